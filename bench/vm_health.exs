# How responsive the VM stays while ObjectStoreX streams: latency of a small File.read! and of
# a GenServer.call to another process, on an idle VM, while 64 downloads stream, and, as the
# yardstick, under a pure-BEAM load of the same shape: 64 processes reading a local file of the
# same size in chunks of the same size with :file.read, again and again.
#
#   MIX_ENV=prod mix run bench/vm_health.exs STORE
#
# Each set of samples is 2,000 rounds of the probes, one a millisecond, or what 20 s allow.
# STORE as for bench/osx.exs. Prints, for the probes file_read and genserver_call,
# `HEALTH probe idle_p50_us idle_p99_us busy_p50_us busy_p99_us` and
# `BASELINE probe p50_us p99_us samples` (under the pure-BEAM load); `STREAMED bytes micros` and
# `BASELINE_STREAMED bytes micros`, what each load moved while its samples were taken (proof
# that it was running); and `LONG_SCHEDULE idle busy baseline`, the number of times a process
# or port ran uninterrupted for more than 5 ms on a scheduler (erlang:system_monitor/2's
# long_schedule) during each set of samples.
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
  @sampling_ms 20_000
  # ms a process or port may run uninterrupted before it counts as a long schedule.
  @long_schedule 5

  def main([spec]) do
    store = Bench.StoreSpec.open!(spec)
    block = :crypto.strong_rand_bytes(@mib)
    # The downloads' chunk size is the one the bench's download rows use for this backend.
    chunk = if store.backend == :local, do: 8 * @mib, else: 2 * @mib

    :ok =
      Stream.repeatedly(fn -> block end)
      |> Stream.take(@object_mib)
      |> ObjectStoreX.Stream.upload(store, @object)

    # The pure-BEAM load's file: beside the local store's, else in the temporary directory.
    dir = with "local:" <> root <- spec, do: root, else: (_ -> System.tmp_dir!())
    local_copy = Path.join(dir, "objectstorex-health-#{System.os_time()}.bin")
    File.write!(local_copy, List.duplicate(block, @object_mib))

    small = Path.join(System.tmp_dir!(), "objectstorex-health-#{System.os_time()}")
    File.write!(small, :crypto.strong_rand_bytes(4096))
    {:ok, echo} = GenServer.start_link(Bench.Echo, nil)

    probes = [
      file_read: fn -> File.read!(small) end,
      genserver_call: fn -> GenServer.call(echo, :ping) end
    ]

    monitor = start_long_schedule_monitor()
    idle = sample(probes)
    idle_long = long_schedules(monitor)

    {micros, busy, streamed, busy_long} =
      under_load(probes, monitor, fn counter, parent ->
        stream_forever(store, chunk, counter, parent)
      end)

    {base_micros, baseline, base_streamed, base_long} =
      under_load(probes, monitor, fn counter, parent ->
        read_forever(local_copy, chunk, counter, parent)
      end)

    File.rm!(small)
    File.rm!(local_copy)

    for {name, _} <- probes do
      {idle_p50, idle_p99} = percentiles(idle[name])
      {busy_p50, busy_p99} = percentiles(busy[name])
      {base_p50, base_p99} = percentiles(baseline[name])
      IO.puts("HEALTH #{name} #{idle_p50} #{idle_p99} #{busy_p50} #{busy_p99}")
      IO.puts("BASELINE #{name} #{base_p50} #{base_p99} #{length(baseline[name])}")
    end

    IO.puts("STREAMED #{streamed} #{micros}")
    IO.puts("BASELINE_STREAMED #{base_streamed} #{base_micros}")
    IO.puts("LONG_SCHEDULE #{idle_long} #{busy_long} #{base_long}")
  end

  # Samples the probes while @streams processes run `load`; returns the sampling time, the
  # samples, the bytes the load moved meanwhile and the long schedules seen meanwhile (not
  # those of the workers' start or of their killing).
  defp under_load(probes, monitor, load) do
    counter = :counters.new(1, [:write_concurrency])
    parent = self()
    workers = for _ <- 1..@streams, do: spawn_link(fn -> load.(counter, parent) end)
    # Every worker delivers a first chunk before sampling starts, so all are in flight.
    for _ <- workers, do: receive(do: (:streaming -> :ok))

    _ = long_schedules(monitor)
    before = :counters.get(counter, 1)
    {micros, samples} = :timer.tc(fn -> sample(probes) end)
    moved = :counters.get(counter, 1) - before
    long = long_schedules(monitor)
    Enum.each(workers, &(Process.unlink(&1) && Process.exit(&1, :kill)))
    {micros, samples, moved, long}
  end

  # A process that counts long_schedule events, read and reset by long_schedules/1.
  defp start_long_schedule_monitor do
    monitor = spawn_link(fn -> count_long_schedules(0) end)
    :erlang.system_monitor(monitor, [{:long_schedule, @long_schedule}])
    monitor
  end

  defp count_long_schedules(n) do
    receive do
      {:monitor, _pid_or_port, :long_schedule, _info} ->
        count_long_schedules(n + 1)

      {:take, from} ->
        send(from, {:long_schedules, n})
        count_long_schedules(0)
    end
  end

  defp long_schedules(monitor) do
    send(monitor, {:take, self()})
    receive(do: ({:long_schedules, n} -> n))
  end

  # Reads the local file again and again in chunk-size pieces, as a pure-BEAM stand-in for
  # a download; tells `notify` when the first chunk has arrived.
  defp read_forever(path, chunk, counter, notify) do
    {:ok, fd} = :file.open(path, [:raw, :read, :binary])
    read_all(fd, chunk, counter, notify)
    :ok = :file.close(fd)
    read_forever(path, chunk, counter, nil)
  end

  defp read_all(fd, chunk, counter, notify) do
    case :file.read(fd, chunk) do
      {:ok, data} ->
        if notify, do: send(notify, :streaming)
        :counters.add(counter, 1, byte_size(data))
        read_all(fd, chunk, counter, nil)

      :eof ->
        :ok
    end
  end

  # Downloads the object again and again; tells `notify` when the first chunk has arrived.
  defp stream_forever(store, chunk, counter, notify) do
    ObjectStoreX.Stream.download(store, @object, chunk_size: chunk)
    |> Stream.with_index()
    |> Enum.each(fn {chunk, i} ->
      if i == 0 and notify, do: send(notify, :streaming)
      :counters.add(counter, 1, byte_size(chunk))
    end)

    stream_forever(store, chunk, counter, nil)
  end

  # Probes take turns, one sample each per millisecond, in this process, until @samples rounds
  # or @sampling_ms have passed: a load that slows a probe to many milliseconds gets fewer.
  defp sample(probes) do
    deadline = System.monotonic_time(:millisecond) + @sampling_ms

    Stream.repeatedly(fn ->
      Process.sleep(1)
      for {name, probe} <- probes, do: {name, elem(:timer.tc(probe), 0)}
    end)
    |> Stream.take(@samples)
    |> Enum.reduce_while([], fn round, acc ->
      acc = [round | acc]

      if System.monotonic_time(:millisecond) < deadline,
        do: {:cont, acc},
        else: {:halt, acc}
    end)
    |> List.flatten()
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  defp percentiles(values) do
    sorted = Enum.sort(values)
    at = fn q -> Enum.at(sorted, min(length(sorted) - 1, floor(q * length(sorted)))) end
    {at.(0.5), at.(0.99)}
  end
end

Bench.VMHealth.main(System.argv())
