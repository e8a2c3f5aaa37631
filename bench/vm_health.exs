# How responsive the VM stays while ObjectStoreX streams: latency of a small File.read! and of
# a GenServer.call to another process, on an idle VM, while STREAMS downloads stream (64 by
# default), and, as the yardstick, under a pure-BEAM load of the same shape: STREAMS processes
# reading a local file of the same size in chunks of the same size with :file.read, again and
# again.
#
#   MIX_ENV=prod mix run bench/vm_health.exs STORE [STREAMS [PHASES [SAMPLES]]]
#
# PHASES, comma-separated, picks the sets of samples (idle,downloads,baseline by default); the
# bench's cost curves run `downloads` alone, so that the process's peak RSS is the downloads'.
# Each set of samples is SAMPLES rounds of the probes (2,000), one a millisecond, or what
# SAMPLES x 10 ms allow (20 s).
# STORE as for bench/osx.exs. Prints, for each phase run:
#
#   PROBE phase probe p50_us p99_us samples   for the probes file_read and genserver_call
#   STREAMED phase bytes micros               what the load moved while its samples were taken
#                                             (proof that it was running; not for idle)
#   LONG_SCHEDULE phase count                 the times a process or port ran uninterrupted
#                                             for more than 5 ms on a scheduler
#                                             (erlang:system_monitor/2's long_schedule)
#   LONG_SCHEDULE_AT phase count in out       those times by where the process was scheduled
#                                             in and out (the function, or "port"), most
#                                             frequent first
#
# and `BASE_RSS kib`, the VM's RSS just before the downloads start, and `BOUND bytes`, the
# documented memory bound of the downloads: (prefetch + 1) * chunk_size per stream, plus the
# process-wide pool of local read buffers on the local store (see ObjectStoreX.Stream).
Code.require_file("store_spec.exs", __DIR__)
Code.require_file("proc.exs", __DIR__)

defmodule Bench.Echo do
  use GenServer

  def init(state), do: {:ok, state}
  def handle_call(:ping, _from, state), do: {:reply, :pong, state}
end

defmodule Bench.VMHealth do
  @mib 1_048_576
  @object "bench/health.bin"
  @object_mib 64
  @samples 2000
  # Sampling stops after this long per round asked for, however slow the probes are.
  @sampling_ms_per_round 10
  # ms a process or port may run uninterrupted before it counts as a long schedule.
  @long_schedule 5
  @phases ~w(idle downloads baseline)

  def main([spec]), do: main([spec, "64"])
  def main([spec, streams]), do: main([spec, streams, Enum.join(@phases, ",")])
  def main([spec, streams, phases]), do: main([spec, streams, phases, "#{@samples}"])

  def main([spec, streams, phases, samples]) do
    {streams, samples} = {String.to_integer(streams), String.to_integer(samples)}
    phases = String.split(phases, ",")

    unless streams > 0 and samples > 0 and phases != [] and phases -- @phases == [],
      do: raise("STREAMS and SAMPLES must be positive, PHASES among #{Enum.join(@phases, ",")}")

    store = Bench.StoreSpec.open!(spec)
    block = :crypto.strong_rand_bytes(@mib)
    # The downloads' chunk size is the one the bench's download rows use (the default).
    chunk = 2 * @mib
    IO.puts("BOUND #{Bench.StoreSpec.download_bound(store, chunk, streams)}")

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

    # One round first, so that the modules the probes and the sampling call are loaded: the
    # cost curves sample the downloads alone, with no idle round before them.
    _ = by_probe(sample(probes, 1))
    monitor = start_long_schedule_monitor()

    if "idle" in phases do
      rounds = sample(probes, samples)
      long = long_schedules(monitor)
      report("idle", by_probe(rounds), nil, long)
    end

    if "downloads" in phases do
      :erlang.garbage_collect()
      IO.puts("BASE_RSS #{Bench.Proc.rss_kib()}")

      {micros, busy, moved, long} =
        under_load(probes, monitor, streams, samples, fn counter, parent ->
          stream_forever(store, chunk, counter, parent)
        end)

      report("downloads", busy, {moved, micros}, long)
    end

    if "baseline" in phases do
      # The pure-BEAM load's file: beside the local store's, else in the temporary directory.
      dir = with "local:" <> root <- spec, do: root, else: (_ -> System.tmp_dir!())
      local_copy = Path.join(dir, "objectstorex-health-#{System.os_time()}.bin")
      File.write!(local_copy, List.duplicate(block, @object_mib))

      {micros, baseline, moved, long} =
        under_load(probes, monitor, streams, samples, fn counter, parent ->
          read_forever(local_copy, chunk, counter, parent)
        end)

      File.rm!(local_copy)
      report("baseline", baseline, {moved, micros}, long)
    end

    File.rm!(small)
  end

  defp report(phase, samples, streamed, long) do
    for {name, values} <- Enum.sort(samples) do
      {p50, p99} = percentiles(values)
      IO.puts("PROBE #{phase} #{name} #{p50} #{p99} #{length(values)}")
    end

    with {bytes, micros} <- streamed, do: IO.puts("STREAMED #{phase} #{bytes} #{micros}")
    IO.puts("LONG_SCHEDULE #{phase} #{length(long)}")

    long
    |> Enum.frequencies()
    |> Enum.sort_by(fn {_where, n} -> -n end)
    |> Enum.each(fn {{at_in, at_out}, n} ->
      IO.puts("LONG_SCHEDULE_AT #{phase} #{n} #{mfa(at_in)} #{mfa(at_out)}")
    end)
  end

  # Samples the probes while `streams` processes run `load`; returns the sampling time, the
  # samples, the bytes the load moved meanwhile and the long schedules seen meanwhile (not
  # those of the workers' start or of their killing).
  defp under_load(probes, monitor, streams, samples, load) do
    counter = :counters.new(1, [:write_concurrency])
    parent = self()
    workers = for _ <- 1..streams, do: spawn_link(fn -> load.(counter, parent) end)
    # Every worker delivers a first chunk before sampling starts, so all are in flight.
    for _ <- workers, do: receive(do: (:streaming -> :ok))

    _ = long_schedules(monitor)
    before = :counters.get(counter, 1)
    {micros, rounds} = :timer.tc(fn -> sample(probes, samples) end)
    moved = :counters.get(counter, 1) - before
    long = long_schedules(monitor)
    Enum.each(workers, &(Process.unlink(&1) && Process.exit(&1, :kill)))
    {micros, by_probe(rounds), moved, long}
  end

  # A process that collects long_schedule events (where each was scheduled in and out), read
  # and reset by long_schedules/1.
  defp start_long_schedule_monitor do
    monitor = spawn_link(fn -> count_long_schedules([]) end)
    :erlang.system_monitor(monitor, [{:long_schedule, @long_schedule}])
    monitor
  end

  defp count_long_schedules(events) do
    receive do
      {:monitor, pid_or_port, :long_schedule, info} ->
        count_long_schedules([where(pid_or_port, info) | events])

      {:take, from} ->
        send(from, {:long_schedules, events})
        count_long_schedules([])
    end
  end

  # Kept as terms and formatted when reported: formatting here, during the sampling, loaded
  # `Exception` at the first event, and the code loader's run counted as a long schedule.
  defp where(port, _info) when is_port(port), do: {:port, :port}
  defp where(_pid, info), do: {info[:in], info[:out]}

  defp mfa(:port), do: "port"
  defp mfa({m, f, a}), do: Exception.format_mfa(m, f, a)
  defp mfa(other), do: inspect(other)

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

  # Probes take turns, one sample each per millisecond, in this process, until `rounds` rounds
  # or 10 ms per round have passed: a load that slows a probe to many milliseconds gets fewer.
  # Answers the rounds, each a list of `{probe, micros}`.
  defp sample(probes, rounds) do
    deadline = System.monotonic_time(:millisecond) + rounds * @sampling_ms_per_round

    Stream.repeatedly(fn ->
      Process.sleep(1)
      for {name, probe} <- probes, do: {name, elem(:timer.tc(probe), 0)}
    end)
    |> Stream.take(rounds)
    |> Enum.reduce_while([], fn round, acc ->
      acc = [round | acc]

      if System.monotonic_time(:millisecond) < deadline,
        do: {:cont, acc},
        else: {:halt, acc}
    end)
  end

  # The samples by probe, grouped once the long schedules are read: the grouping of thousands
  # of samples on a busy core was itself counted as one (in `:lists.do_flatten/2`).
  defp by_probe(rounds) do
    rounds
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
