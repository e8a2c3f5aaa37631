defmodule ObjectStoreX.CancellationTest do
  # Reads the library's global counts of live native work, so it must not run beside other tests.
  use ExUnit.Case, async: false

  alias ObjectStoreX.{Native, TestBackends, TestHelpers}
  alias ObjectStoreX.Stream, as: OSXStream

  @mib 1_048_576

  defp live, do: Native.native_stats()

  # Waits up to `ms` for the live counts to return to `baseline`.
  defp settles_to(baseline, ms \\ 1000) do
    deadline = System.monotonic_time(:millisecond) + ms

    Stream.repeatedly(fn ->
      Process.sleep(10)
      live()
    end)
    |> Enum.find(fn now -> now == baseline or System.monotonic_time(:millisecond) > deadline end)
  end

  describe "a consumer that dies" do
    for backend <- [:memory, :local, :s3, :azure] do
      if backend in [:s3, :azure], do: @tag(backend: backend)

      test "stops its #{backend} download within a second" do
        store = TestBackends.store!(unquote(backend))
        :ok = ObjectStoreX.put(store, "big.bin", :crypto.strong_rand_bytes(8 * @mib))
        baseline = live()
        parent = self()

        consumer =
          spawn(fn ->
            OSXStream.download(store, "big.bin", chunk_size: 64 * 1024)
            |> Enum.each(fn _ ->
              send(parent, :chunk)
              Process.sleep(50)
            end)
          end)

        assert_receive :chunk, 2000
        {_, streams, _} = live()
        assert streams > elem(baseline, 1)
        Process.exit(consumer, :kill)
        assert settles_to(baseline) == baseline
      end
    end

    test "stops its get_many, whose requests are still waiting, within a second" do
      store = TestBackends.store!(:memory)
      for i <- 1..20, do: :ok = ObjectStoreX.put(store, "gm/#{i}", "x")

      {:ok, slow} =
        ObjectStoreX.Fault.wrap(store, latency: [ms: 60_000, path: "gm/*", nth: 3, times: :always])

      baseline = live()
      parent = self()

      consumer =
        spawn(fn ->
          OSXStream.get_many(slow, Enum.map(1..20, &"gm/#{&1}"), ordered: false)
          |> Enum.each(fn item -> send(parent, {:item, item}) end)
        end)

      assert_receive {:item, {_, {:ok, "x", _}}}, 2000
      {_, streams, _} = live()
      assert streams > elem(baseline, 1)
      Process.exit(consumer, :kill)
      assert settles_to(baseline) == baseline
    end

    test "stops its listing within a second" do
      store = TestBackends.store!(:memory)
      for i <- 1..50, do: :ok = ObjectStoreX.put(store, "l/#{i}", "x")
      baseline = live()
      parent = self()

      consumer =
        spawn(fn ->
          OSXStream.list_stream(store, page_size: 1, prefetch: 1)
          |> Enum.each(fn _ ->
            send(parent, :item)
            Process.sleep(1000)
          end)
        end)

      assert_receive :item, 2000
      Process.exit(consumer, :kill)
      assert settles_to(baseline) == baseline
    end
  end

  describe "timeouts" do
    setup do
      {port, stop} = TestHelpers.silent_server()
      on_exit(stop)

      store =
        ObjectStoreX.new!(:http,
          url: "http://127.0.0.1:#{port}",
          allow_http: true,
          retry: [max_retries: 0]
        )

      {:ok, store: store}
    end

    test "a stalled download raises :timeout, is cancelled and leaves no message", %{store: store} do
      baseline = live()
      started = System.monotonic_time(:millisecond)

      error =
        assert_raise ObjectStoreX.Error, fn ->
          OSXStream.download(store, "x.bin", timeout: 300) |> Stream.run()
        end

      assert error.reason == :timeout
      assert ObjectStoreX.Error.retryable?(error)
      assert System.monotonic_time(:millisecond) - started < 5000
      assert ObjectStoreX.TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
    end

    test "a stalled one-shot call returns :timeout and leaves no message", %{store: store} do
      baseline = live()

      assert {:error, %ObjectStoreX.Error{reason: :timeout}} =
               ObjectStoreX.get(store, "x.bin", timeout: 200)

      assert ObjectStoreX.TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
    end
  end

  describe "get_many and put_many" do
    test "halting early cancels the requests still running and leaves no message" do
      store = TestBackends.store!(:memory)
      for i <- 1..10, do: :ok = ObjectStoreX.put(store, "gh/#{i}", "x")

      {:ok, slow} =
        ObjectStoreX.Fault.wrap(store, latency: [ms: 60_000, path: "gh/*", nth: 2, times: :always])

      baseline = live()
      started = System.monotonic_time(:millisecond)

      assert [{"gh/" <> _, {:ok, "x", _}}] =
               OSXStream.get_many(slow, Enum.map(1..10, &"gh/#{&1}"), ordered: false)
               |> Enum.take(1)

      assert System.monotonic_time(:millisecond) - started < 5000
      assert TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
    end

    test "an object slower than :timeout gets :timeout, the others their data" do
      store = TestBackends.store!(:memory)
      for i <- 1..6, do: :ok = ObjectStoreX.put(store, "gt/#{i}", "#{i}")
      {:ok, slow} = ObjectStoreX.Fault.wrap(store, latency: [ms: 60_000, path: "gt/4"])
      baseline = live()

      got = OSXStream.get_many(slow, Enum.map(1..6, &"gt/#{&1}"), timeout: 300) |> Enum.to_list()

      assert [
               {"gt/1", {:ok, "1", _}},
               {"gt/2", {:ok, "2", _}},
               {"gt/3", {:ok, "3", _}},
               {"gt/4", {:error, %ObjectStoreX.Error{reason: :timeout} = error}},
               {"gt/5", {:ok, "5", _}},
               {"gt/6", {:ok, "6", _}}
             ] = got

      assert ObjectStoreX.Error.retryable?(error)
      assert TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
    end

    test "put_many: halting early cancels the writes still running and leaves no message" do
      store = TestBackends.store!(:memory)

      {:ok, slow} =
        ObjectStoreX.Fault.wrap(store,
          latency: [ms: 60_000, op: :put, path: "pm/*", nth: 2, times: :always]
        )

      baseline = live()
      started = System.monotonic_time(:millisecond)
      entries = Enum.map(1..10, &{"pm/#{&1}", "x"})

      assert [{"pm/" <> _, {:ok, %ObjectStoreX.PutResult{}}}] =
               OSXStream.put_many(slow, entries, ordered: false) |> Enum.take(1)

      assert System.monotonic_time(:millisecond) - started < 5000
      assert TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
      # The cancelled writes never reached the store.
      assert {:ok, [_written]} = ObjectStoreX.list(store, prefix: "pm")
    end

    test "put_many: a write slower than :timeout gets :timeout, the others are written" do
      store = TestBackends.store!(:memory)
      {:ok, slow} = ObjectStoreX.Fault.wrap(store, latency: [ms: 60_000, op: :put, path: "pt/2"])
      baseline = live()

      got =
        OSXStream.put_many(slow, Enum.map(1..3, &{"pt/#{&1}", "#{&1}"}), timeout: 300)
        |> Enum.to_list()

      assert [
               {"pt/1", {:ok, _}},
               {"pt/2", {:error, %ObjectStoreX.Error{reason: :timeout}}},
               {"pt/3", {:ok, _}}
             ] = got

      assert {:ok, "3", _} = ObjectStoreX.get(store, "pt/3")
      assert TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
    end

    test "bad options raise when it is called, naming the option" do
      store = TestBackends.store!(:memory)

      for {opts, named} <- [
            {[max_concurrency: 0], ":max_concurrency"},
            {[max_concurrency: 1_001], ":max_concurrency"},
            {[ordered: :yes], ":ordered"},
            {[timeout: -1], ":timeout"},
            {[range: :all], ":range"},
            {[version: "v1"], "version"}
          ] do
        error = assert_raise ObjectStoreX.Error, fn -> OSXStream.get_many(store, ["a"], opts) end
        assert error.reason == :invalid_argument
        assert error.message =~ named
      end

      error = assert_raise ObjectStoreX.Error, fn -> OSXStream.get_many(store, :not_paths) end
      assert error.message =~ "Enumerable"

      for {opts, named} <- [
            {[max_concurrency: 0], ":max_concurrency"},
            {[ordered: 1], ":ordered"},
            {[mode: :sometimes], "mode"},
            {[content_type: "a\nb"], ":content_type"},
            {[range: {0, 1}], "range"}
          ] do
        error = assert_raise ObjectStoreX.Error, fn -> OSXStream.put_many(store, [], opts) end
        assert error.reason == :invalid_argument
        assert error.message =~ named
      end

      error = assert_raise ObjectStoreX.Error, fn -> OSXStream.put_many(store, 42) end
      assert error.message =~ "Enumerable"

      for bad <- [[~c"a" | "b"], fn -> :ok end] do
        error = assert_raise ObjectStoreX.Error, fn -> OSXStream.get_many(store, bad) end
        assert error.message =~ "paths must be an Enumerable"
        error = assert_raise ObjectStoreX.Error, fn -> OSXStream.put_many(store, bad) end
        assert error.message =~ "entries must be an Enumerable"
      end
    end

    test "a source that raises re-raises its own exception, cancels the rest and leaves no message" do
      store = TestBackends.store!(:memory)
      for i <- 1..10, do: :ok = ObjectStoreX.put(store, "gs/#{i}", "x")
      {:ok, slow} = ObjectStoreX.Fault.wrap(store, latency: [ms: 60_000, path: "gs/1"])
      baseline = live()
      started = System.monotonic_time(:millisecond)

      paths =
        Stream.map(1..10, fn
          5 -> raise "bad source"
          i -> "gs/#{i}"
        end)

      # gs/1 is still being read when the source raises, after gs/2 to gs/4 arrived (3 at once,
      # 1 queued).
      assert_raise RuntimeError, "bad source", fn ->
        OSXStream.get_many(slow, paths, max_concurrency: 3, ordered: false) |> Stream.run()
      end

      assert System.monotonic_time(:millisecond) - started < 5000

      assert TestHelpers.drain_mailbox(200) == []
      assert settles_to(baseline) == baseline
    end
  end

  describe "an unfinished upload" do
    test "is dropped when garbage-collected" do
      store = TestBackends.store!(:memory)
      baseline = live()

      task =
        Task.async(fn ->
          {acc, collect} =
            Collectable.into(OSXStream.upload_sink(store, "gc.bin", part_size: 5 * @mib))

          _ = collect.(acc, {:cont, :crypto.strong_rand_bytes(6 * @mib)})
          {_, _, uploads} = live()
          :erlang.garbage_collect()
          uploads
        end)

      assert Task.await(task) > elem(baseline, 2)
      assert settles_to(baseline) == baseline

      assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
               ObjectStoreX.head(store, "gc.bin")
    end
  end
end
