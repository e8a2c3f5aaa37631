defmodule ObjectStoreX.SchedulerTest do
  # Proves that the NIF never blocks a scheduler while 200 operations run at once:
  #
  #   * every native call returns quickly: call-time tracing of ObjectStoreX.Native measures how
  #     long each call held its scheduler (a blocking NIF would hold it for the whole request);
  #   * no long_schedule event (a process holding a scheduler for over 5 ms) points into
  #     ObjectStoreX.Native, which holds nothing but NIF stubs (the Elixir side of the reply
  #     protocol lives in ObjectStoreX.Call). Events elsewhere are printed, not failed: on a
  #     2-core machine the OS sometimes preempts a scheduler thread, and then any code shows up
  #     (seen: :os.type/0, erl_prim_loader, ObjectStoreX.Call.await_reply/3);
  #   * a process doing tiny file reads stays responsive (p99 under 50 ms).
  #
  # async: false, because the system monitor and call tracing are VM-wide and the latency
  # figures mean something only when the other test modules are not running.
  use ExUnit.Case, async: false

  alias ObjectStoreX.{Meta, TestBackends}
  import ObjectStoreX.TestHelpers

  @payload_size 256 * 1024
  @ops_each 100
  @long_schedule_ms 5
  # at most this share of the operations may see an OS-preemption long_schedule in Native
  @native_event_budget 0.05
  @p99_limit_us 50_000
  @slow_call_us 5_000
  @min_load_ms 500
  @max_rounds 10

  describe "the I/O threads' niceness" do
    # In a child VM, since the runtime reads OBJECTSTOREX_IO_NICE once, when it starts.
    defp io_thread_nices(env) do
      code = """
      {:ok, store} = ObjectStoreX.new(:memory)
      :ok = ObjectStoreX.put(store, "a", "b")
      for task <- File.ls!("/proc/self/task"),
          String.trim(File.read!("/proc/self/task/\#{task}/comm")) == "objectstorex-io" do
        # The comm field may hold spaces; the fields after its closing parenthesis do not.
        [_, rest] = String.split(File.read!("/proc/self/task/\#{task}/stat"), ") ", parts: 2)
        IO.puts("NICE " <> Enum.at(String.split(rest), 16))
      end
      """

      out = run_child_vm(code, env)

      {for("NICE " <> n <- String.split(out, "\n"), do: String.to_integer(n)), out}
    end

    test "is 10 by default and OBJECTSTOREX_IO_NICE sets it" do
      {default, out} = io_thread_nices([{"OBJECTSTOREX_IO_NICE", nil}])
      assert default != [] and Enum.all?(default, &(&1 == 10)), inspect(default)
      refute out =~ "[warning]"
      assert {[_ | _] = zero, _} = io_thread_nices([{"OBJECTSTOREX_IO_NICE", "0"}])
      assert Enum.all?(zero, &(&1 == 0)), inspect(zero)
      assert {[_ | _] = five, out} = io_thread_nices([{"OBJECTSTOREX_IO_NICE", " 5 "}])
      assert Enum.all?(five, &(&1 == 5)), inspect(five)
      refute out =~ "[warning]"
    end

    test "a value that is not a niceness keeps the default, with a warning" do
      for bad <- ["fast", "20", "-1"] do
        # Nonsense keeps the default rather than failing the load, and says so.
        assert {[_ | _] = nices, out} = io_thread_nices([{"OBJECTSTOREX_IO_NICE", bad}])
        assert Enum.all?(nices, &(&1 == 10)), inspect(nices)

        assert out =~
                 "[warning] OBJECTSTOREX_IO_NICE must be a whole number from 0 to 19, " <>
                   "got #{inspect(bad)}: 10 is used"
      end
    end
  end

  describe "large chunks the VM lets go" do
    # In a child VM, so that the thread is known not to exist before the first large chunk.
    test "are freed by a thread of their own, not by the scheduler that collects them" do
      code = """
      free_threads = fn ->
        Enum.count(File.ls!("/proc/self/task"), fn task ->
          String.trim(File.read!("/proc/self/task/\#{task}/comm")) == "objectstorex-gc"
        end)
      end

      # Each download runs in a process that exits, so its chunks are let go at once.
      drop_chunks = fn store, chunk_size ->
        {pid, ref} =
          spawn_monitor(fn ->
            ObjectStoreX.Stream.download(store, "big", chunk_size: chunk_size) |> Enum.to_list()
          end)

        receive do: ({:DOWN, ^ref, :process, ^pid, :normal} -> :ok)
        Process.sleep(100)
      end

      {:ok, store} = ObjectStoreX.new(:memory)
      :ok = ObjectStoreX.put(store, "big", :binary.copy(<<7>>, 16 * 1_048_576))
      # Below malloc's mmap threshold (4 MiB as the library sets it), freeing is cheap.
      drop_chunks.(store, 1_048_576)
      IO.puts("SMALL \#{free_threads.()}")
      drop_chunks.(store, 8 * 1_048_576)
      IO.puts("LARGE \#{free_threads.()}")
      """

      out = run_child_vm(code)
      assert out =~ "SMALL 0\n", out
      assert out =~ "LARGE 1\n", out
    end
  end

  test "local: 200 concurrent operations never block a scheduler" do
    check_schedulers(:local)
  end

  @tag backend: :s3
  test "s3: 200 concurrent operations never block a scheduler" do
    check_schedulers(:s3)
  end

  defp check_schedulers(backend) do
    store = TestBackends.store!(backend)

    payload = random_bytes(@payload_size)

    # The objects the gets will read, written before the measured window.
    1..@ops_each
    |> Task.async_stream(&ObjectStoreX.put(store, "read/#{&1}.bin", payload),
      max_concurrency: 16,
      timeout: 60_000
    )
    |> Enum.each(fn result -> assert result == {:ok, :ok} end)

    tiny = Path.join(TestBackends.tmp_dir!("tiny"), "tiny.txt")
    File.write!(tiny, "tiny")
    on_exit(fn -> File.rm_rf(Path.dirname(tiny)) end)

    ops =
      Enum.shuffle(
        Enum.map(1..@ops_each, &{:put, "write/#{&1}.bin"}) ++
          Enum.map(1..@ops_each, &{:get, "read/#{&1}.bin"})
      )

    flush_monitor_messages()
    old_monitor = :erlang.system_monitor(self(), [{:long_schedule, @long_schedule_ms}])
    start_call_timing()

    {results, read_times, call_times} =
      try do
        prober = spawn_link(fn -> probe_reads(tiny, []) end)

        results = run_rounds(store, payload, ops, System.monotonic_time(:millisecond), 1)

        send(prober, {:stop, self()})

        read_times =
          receive do
            {:read_times, times} -> times
          after
            10_000 -> flunk("the tiny-read prober did not report")
          end

        {results, read_times, collect_call_times()}
      after
        stop_call_timing()
        restore_monitor(old_monitor)
      end

    events = flush_monitor_messages()

    # Every operation succeeded, with the right bytes.
    rounds = div(length(results), length(ops))
    assert rounds >= 1 and length(results) == rounds * length(ops)
    failures = Enum.reject(results, &(&1 == {:ok, :ok}))

    assert failures == [],
           "#{length(failures)} operations failed: #{inspect(Enum.take(failures, 3))}"

    # Every native call returned quickly.
    assert length(call_times) >= length(results),
           "expected at least #{length(results)} traced native calls, got #{length(call_times)}"

    slow = Enum.filter(call_times, fn {_fun, us} -> us > @slow_call_us end)
    median = call_times |> Enum.map(&elem(&1, 1)) |> percentile(0.5)

    assert median < 1_000,
           "the median native call held its scheduler for #{median} us"

    assert length(slow) <= @native_event_budget * length(call_times),
           "#{length(slow)} of #{length(call_times)} native calls held their scheduler for " <>
             "over #{div(@slow_call_us, 1000)} ms: #{inspect(Enum.take(slow, 10))}"

    # long_schedule events: all printed, those in ObjectStoreX.Native within the budget.
    {native, other} = Enum.split_with(events, &native_event?/1)

    if events != [] do
      IO.puts(
        "\nscheduler_test(#{backend}): #{length(native)} long_schedule event(s) in " <>
          "ObjectStoreX.Native #{inspect(native)}; #{length(other)} elsewhere " <>
          "#{inspect(Enum.take(other, 5))}"
      )
    end

    # ObjectStoreX.Native holds nothing but NIFs, so an event there is a NIF holding its
    # scheduler; OS preemption inside a call of a few microseconds is vanishingly rare.
    assert native == [],
           "#{length(native)} long_schedule events (> #{@long_schedule_ms} ms) point into " <>
             "ObjectStoreX.Native: #{inspect(native)}"

    # The VM stayed responsive.
    assert length(read_times) >= 50, "only #{length(read_times)} tiny reads completed"
    p99 = percentile(read_times, 0.99)

    assert p99 < @p99_limit_us,
           "p99 of tiny File.read!/1 calls was #{div(p99, 1000)} ms during the load " <>
             "(#{length(read_times)} reads, max #{div(Enum.max(read_times), 1000)} ms)"
  end

  # Runs the 200 operations at once; again (up to @max_rounds times) until the load has lasted
  # @min_load_ms, so that the tiny-read prober gets enough samples on a fast backend.
  defp run_rounds(store, payload, ops, started, round) do
    results =
      ops
      |> Task.async_stream(&run_op(store, payload, &1),
        max_concurrency: length(ops),
        timeout: 120_000
      )
      |> Enum.to_list()

    elapsed = System.monotonic_time(:millisecond) - started

    if elapsed < @min_load_ms and round < @max_rounds,
      do: results ++ run_rounds(store, payload, ops, started, round + 1),
      else: results
  end

  defp run_op(store, payload, {:put, path}) do
    ObjectStoreX.put(store, path, payload)
  end

  defp run_op(store, payload, {:get, path}) do
    case ObjectStoreX.get(store, path) do
      {:ok, ^payload, %Meta{size: @payload_size}} -> :ok
      {:ok, other, meta} -> {:wrong_data, byte_size(other), meta}
      error -> error
    end
  end

  defp probe_reads(file, acc) do
    receive do
      {:stop, from} -> send(from, {:read_times, acc})
    after
      0 ->
        {us, "tiny"} = :timer.tc(fn -> File.read!(file) end)
        Process.sleep(1)
        probe_reads(file, [us | acc])
    end
  end

  defp percentile(values, p) do
    sorted = Enum.sort(values)
    index = max(ceil(p * length(sorted)) - 1, 0)
    Enum.at(sorted, index)
  end

  # Call-time tracing of every function of ObjectStoreX.Native in the processes spawned from
  # now on (the Task.async_stream workers): it accumulates, per process and function, the time
  # the process was scheduled in while inside the function.
  defp start_call_timing do
    :erlang.trace_pattern({ObjectStoreX.Native, :_, :_}, true, [:call_time])
    :erlang.trace(:new_processes, true, [:call])
  end

  defp stop_call_timing do
    :erlang.trace(:new_processes, false, [:call])
    :erlang.trace_pattern({ObjectStoreX.Native, :_, :_}, false, [:call_time])
  end

  # [{function, microseconds per call}] for every process that called into Native.
  defp collect_call_times do
    for {fun, arity} <- ObjectStoreX.Native.__info__(:functions),
        {:call_time, entries} <- [
          :erlang.trace_info({ObjectStoreX.Native, fun, arity}, :call_time)
        ],
        is_list(entries),
        {_pid, count, s, us} <- entries,
        count > 0 do
      {fun, div(s * 1_000_000 + us, count)}
    end
  end

  defp restore_monitor(:undefined), do: :erlang.system_monitor(:undefined)
  defp restore_monitor({pid, opts}), do: :erlang.system_monitor(pid, opts)

  # info is a list such as [timeout: ms, in: {m, f, a} | :undefined, out: {m, f, a} | :undefined]
  defp native_event?({:monitor, _who, :long_schedule, info}) do
    Enum.any?(info, fn
      {where, {ObjectStoreX.Native, _f, _a}} when where in [:in, :out] -> true
      _ -> false
    end)
  end

  defp flush_monitor_messages(acc \\ []) do
    receive do
      {:monitor, _, :long_schedule, _} = event -> flush_monitor_messages([event | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end
end
