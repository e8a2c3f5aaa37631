# How responsive the VM stays while ObjectStoreX streams: latency of a small File.read! and of
# a GenServer.call to another process, on an idle VM and while 64 downloads stream.
#
#   MIX_ENV=prod mix run bench/vm_health.exs STORE
#
# STORE as for bench/osx.exs. Prints `HEALTH probe idle_p50_us idle_p99_us busy_p50_us
# busy_p99_us` for the probes file_read and genserver_call, and `STREAMED bytes micros`: what
# the 64 downloads moved while the busy samples were taken (proof that they were streaming).
Code.require_file("store_spec.exs", __DIR__)

defmodule Bench.Echo do
  use GenServer

  def init(state), do: {:ok, state}
  def handle_call(:ping, _from, state), do: {:reply, :pong, state}
end

defmodule Bench.VMHealth do
  @mib 1_048_576
  @object "bench/health.bin"
  @object_mib 64
  @streams 64
  @samples 2000

  def main([spec]) do
    store = Bench.StoreSpec.open!(spec)
    block = :crypto.strong_rand_bytes(@mib)

    :ok =
      Stream.repeatedly(fn -> block end)
      |> Stream.take(@object_mib)
      |> ObjectStoreX.Stream.upload(store, @object)

    small = Path.join(System.tmp_dir!(), "objectstorex-health-#{System.os_time()}")
    File.write!(small, :crypto.strong_rand_bytes(4096))
    {:ok, echo} = GenServer.start_link(Bench.Echo, nil)

    probes = [
      file_read: fn -> File.read!(small) end,
      genserver_call: fn -> GenServer.call(echo, :ping) end
    ]

    idle = sample(probes)

    counter = :counters.new(1, [:write_concurrency])
    parent = self()

    streamers =
      for _ <- 1..@streams, do: spawn_link(fn -> stream_forever(store, counter, parent) end)

    # Every stream delivers a first chunk before sampling starts, so all 64 are in flight.
    for _ <- streamers, do: receive(do: (:streaming -> :ok))

    before = :counters.get(counter, 1)
    {micros, busy} = :timer.tc(fn -> sample(probes) end)
    streamed = :counters.get(counter, 1) - before
    Enum.each(streamers, &(Process.unlink(&1) && Process.exit(&1, :kill)))
    File.rm!(small)

    for {name, _} <- probes do
      {idle_p50, idle_p99} = percentiles(idle[name])
      {busy_p50, busy_p99} = percentiles(busy[name])
      IO.puts("HEALTH #{name} #{idle_p50} #{idle_p99} #{busy_p50} #{busy_p99}")
    end

    IO.puts("STREAMED #{streamed} #{micros}")
  end

  # Downloads the object again and again; tells `notify` when the first chunk has arrived.
  defp stream_forever(store, counter, notify) do
    ObjectStoreX.Stream.download(store, @object)
    |> Stream.with_index()
    |> Enum.each(fn {chunk, i} ->
      if i == 0 and notify, do: send(notify, :streaming)
      :counters.add(counter, 1, byte_size(chunk))
    end)

    stream_forever(store, counter, nil)
  end

  # Probes take turns, one sample each per millisecond, in this process.
  defp sample(probes) do
    samples =
      for _ <- 1..@samples do
        Process.sleep(1)
        for {name, probe} <- probes, do: {name, elem(:timer.tc(probe), 0)}
      end

    samples |> List.flatten() |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  defp percentiles(values) do
    sorted = Enum.sort(values)
    at = fn q -> Enum.at(sorted, min(length(sorted) - 1, floor(q * length(sorted)))) end
    {at.(0.5), at.(0.99)}
  end
end

Bench.VMHealth.main(System.argv())
