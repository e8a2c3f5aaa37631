defmodule ObjectStoreX.SyncTest do
  # ObjectStoreX.Sync's options, bad input, checkpoints and secrets, on memory and local
  # stores. Pairs of real servers are in test/backends/sync_test.exs, crashes and nodes in
  # sync_crash_test.exs and sync_nodes_test.exs.
  use ExUnit.Case, async: true

  import ObjectStoreX.SyncHelpers
  import ObjectStoreX.TestHelpers, only: [closed_port_opts: 1, drain_mailbox: 1]

  alias ObjectStoreX.{Error, TestBackends}
  alias ObjectStoreX.Sync
  alias ObjectStoreX.Sync.{Checkpoint, Report}

  setup do
    dir = TestBackends.tmp_dir!("sync")
    on_exit(fn -> File.rm_rf(dir) end)
    %{dir: dir, source: TestBackends.store!(:memory), dest: TestBackends.store!(:memory)}
  end

  describe "options" do
    test "unknown and malformed options are refused by name, before anything happens", c do
      :ok = ObjectStoreX.put(c.source, "a", "a")

      for {opts, pattern} <- [
            {[bogus: 1], ~r/unknown option :bogus/},
            {[compare: :md5], ~r/:compare/},
            {[concurrency: 0], ~r/:concurrency/},
            {[concurrency: 1001], ~r/:concurrency/},
            {[delete: "yes"], ~r/:delete/},
            {[dry_run: 1], ~r/:dry_run/},
            {[part_size: 1], ~r/:part_size/},
            {[max_concurrency: -1], ~r/:max_concurrency/},
            {[checkpoint: 42], ~r/:checkpoint/},
            {[nodes: []], ~r/:nodes/},
            {[nodes: [:"nobody@127.0.0.1"]], ~r/not connected/},
            {[on_progress: fn -> :ok end], ~r/:on_progress/},
            {[batch_size: 0], ~r/:batch_size/},
            {[listing: :deep], ~r/:listing/},
            {[prefix: 5], ~r/:prefix/}
          ] do
        assert {:error, %Error{reason: :invalid_argument, message: message}} =
                 Sync.run(c.source, c.dest, opts)

        assert message =~ pattern, "#{inspect(opts)}: #{message}"
      end

      assert {:error, %Error{reason: :invalid_argument}} = Sync.run(:nope, c.dest)
      assert {:error, %Error{reason: :invalid_argument}} = Sync.run(c.source, "memory://")
      assert_raise Error, ~r/unknown option/, fn -> Sync.run!(c.source, c.dest, x: 1) end
      assert ObjectStoreX.list!(c.dest) == []
    end

    test "the same store with overlapping prefixes and :delete is refused before anything", c do
      for {p, d} <- [{nil, nil}, {"a", "a"}, {"a", "a/b"}, {"a/b", "a"}, {nil, "x"}] do
        assert {:error, %Error{reason: :invalid_argument, message: message}} =
                 Sync.run(c.source, c.source, prefix: p, dest_prefix: d, delete: true)

        assert message =~ "overlapping prefixes"
      end

      # A store's own :prefix counts too: a store under "a" and its parent are the same store.
      local = TestBackends.store!(:local)
      parent = ObjectStoreX.new!(:local, root: local.root)
      :ok = ObjectStoreX.put(local, "k", "v")

      assert {:error, %Error{message: message}} =
               Sync.run(parent, local, prefix: local.prefix, delete: true)

      assert message =~ "overlapping"
      assert ObjectStoreX.list!(local) |> length() == 1

      # Disjoint prefixes of one store are fine, with :delete too.
      :ok = ObjectStoreX.put(c.source, "a/1", "1")
      :ok = ObjectStoreX.put(c.source, "ab/2", "2")

      assert {:ok, %Report{copied: 1, deleted: 1}} =
               Sync.run(c.source, c.source, prefix: "a", dest_prefix: "ab", delete: true)

      assert ObjectStoreX.get!(c.source, "ab/1") == "1"
    end
  end

  describe "runs" do
    test "an empty source copies nothing; the report and progress add up", c do
      assert {:ok, %Report{listed: 0, copied: 0, failed: []}} = Sync.run(c.source, c.dest)

      tree = tree(120)
      populate!(c.source, nil, tree)
      parent = self()

      assert {:ok, report} =
               Sync.run(c.source, c.dest,
                 concurrency: 3,
                 batch_size: 7,
                 on_progress: &send(parent, {:progress, &1})
               )

      assert %Report{listed: 120, copied: 120, skipped: 0, failed: []} = report
      assert report.duration_us > 0
      assert_holds!(c.dest, nil, tree)

      progress = for {:progress, p} <- Process.info(self(), :messages) |> elem(1), do: p
      assert %{listed: 120, copied: 120, failed: 0} = List.last(progress)
      assert Enum.all?(progress, &(Map.keys(&1) == [:bytes, :copied, :failed, :listed, :skipped]))
    end

    test "listing: :tree walks key-ordered stores by directory, to the same result", c do
      # With keys that sort between a directory and the keys below it ("a-x" < "a/").
      tree = tree(120) ++ [{"a-x", "x"}, {"a/b/c", "deep"}]
      populate!(c.source, "p", tree)
      :ok = ObjectStoreX.put(c.source, "p0", "beside the prefix, not in it")

      assert {:ok, %Report{listed: 122, copied: 122, failed: []}} =
               Sync.run(c.source, c.dest, prefix: "p", dest_prefix: "q", listing: :tree)

      assert_holds!(c.dest, "q", tree)

      # A second run compares every key and copies nothing, either way of listing.
      for mode <- [:tree, :flat] do
        assert {:ok, %Report{listed: 122, copied: 0, skipped: 122}} =
                 Sync.run(c.source, c.dest, prefix: "p", dest_prefix: "q", listing: mode)
      end
    end

    test "a local tree syncs the same objects by directory as flat, whatever else lies in it",
         c do
      root = Path.join(c.dir, "src")
      local = ObjectStoreX.new!(:local, root: root)
      tree = tree(60)
      populate!(local, nil, tree)
      # No object, either way of listing: a FIFO (which no GET reads), a link to nothing and a
      # write in progress. A link to a file is one.
      {_, 0} = System.cmd("mkfifo", [Path.join(root, "dir 1/fifo")])
      File.ln_s!(Path.join(root, "nowhere"), Path.join(root, "nested/broken"))
      File.write!(Path.join(root, "nested/a/half#12"), "being written")
      File.ln_s!(Path.join(root, "top-5"), Path.join(root, "dir 2/link"))
      expected = [{"dir 2/link", List.keyfind(tree, "top-5", 0) |> elem(1)} | tree]
      n = length(expected)

      assert {:ok, %Report{listed: ^n, copied: ^n, failed: []}} =
               Sync.run(local, c.dest, listing: :tree)

      assert_holds!(c.dest, nil, expected)

      assert {:ok, %Report{listed: ^n, copied: 0, skipped: ^n, failed: []}} =
               Sync.run(local, c.dest, listing: :flat)
    end

    test "a re-sync with changes spread among many unchanged objects copies just those", c do
      # Skipped objects travel 1,000 to a batch, those to copy :batch_size to one: one batch
      # size of each, and an interrupted run's checkpoint, must still add up.
      tree = for i <- 1..2_600, do: {"k#{String.pad_leading("#{i}", 4, "0")}", "v#{i}"}
      populate!(c.source, nil, tree)
      assert {:ok, %Report{copied: 2_600}} = Sync.run(c.source, c.dest)

      changed = for {key, _} <- Enum.take_every(tree, 97), do: key
      for key <- changed, do: :ok = ObjectStoreX.put(c.source, key, "changed, longer: #{key}")
      file = Path.join(c.dir, "spread.ckpt")

      assert {:ok, %Report{listed: 2_600, copied: copied, skipped: skipped, failed: []}} =
               Sync.run(c.source, c.dest, batch_size: 1, checkpoint: file)

      assert {copied, skipped} == {length(changed), 2_600 - length(changed)}

      for key <- changed,
          do: assert(ObjectStoreX.get!(c.dest, key) == "changed, longer: #{key}")

      assert File.read!(file) =~ ~r/\nE - [0-9A-F]{8}\n$/
    end

    test "large objects go to different workers, not one batch", c do
      prefix = "big-#{System.unique_integer([:positive])}"
      data = :binary.copy("x", 9 * 1_048_576)
      for i <- 1..4, do: :ok = ObjectStoreX.put(c.source, "#{prefix}/#{i}", data)
      id = "sync-batches-#{System.unique_integer()}"
      parent = self()

      :telemetry.attach(
        id,
        [:objectstorex, :upload, :start],
        fn _, _, meta, _ ->
          if String.starts_with?(meta.path, prefix), do: send(parent, {:upload, self()})
        end,
        nil
      )

      on_exit(fn -> :telemetry.detach(id) end)

      assert {:ok, %Report{copied: 4}} =
               Sync.run(c.source, c.dest, prefix: prefix, dest_prefix: prefix, concurrency: 4)

      workers = for {:upload, pid} <- drain_mailbox(0), uniq: true, do: pid
      assert length(workers) > 1
    end

    test "one object failing is reported and never stops the others", c do
      tree = tree(40)
      populate!(c.source, nil, tree)
      # A destination "file" where the failing key needs a directory: that one copy fails.
      local = TestBackends.store!(:local)
      {bad_key, _} = Enum.find(tree, fn {k, _} -> String.starts_with?(k, "nested/a/b/c/") end)
      :ok = ObjectStoreX.put(local, "nested/a/b", "a file in the way")

      assert {:ok, report} = Sync.run(c.source, local)
      failed = Enum.map(report.failed, &elem(&1, 0))
      assert bad_key in failed
      assert Enum.all?(report.failed, fn {_, e} -> match?(%Error{}, e) end)
      assert report.copied == length(tree) - length(failed)
    end

    test "a raising :on_progress ends the run and reaches the caller", c do
      populate!(c.source, nil, tree(30))

      assert_raise RuntimeError, "stop", fn ->
        Sync.run(c.source, c.dest, on_progress: fn _ -> raise "stop" end)
      end

      assert Process.info(self(), :messages) == {:messages, []}
    end
  end

  describe "telemetry" do
    test "start, stop and one event per object", c do
      populate!(c.source, nil, tree(10))
      :ok = ObjectStoreX.put(c.dest, "extra", "x")
      id = "sync-telemetry-#{System.unique_integer()}"
      parent = self()

      attach_sync_events(id, parent)

      assert {:ok, _} = Sync.run(c.source, c.dest, delete: true)
      assert_received {:event, [:objectstorex, :sync, :start], %{system_time: _}, meta}
      assert meta.source_backend == :memory and meta.nodes == [node()]

      assert_received {:event, [:objectstorex, :sync, :stop], %{copied: 10, deleted: 1} = m, _}
      assert m.duration > 0

      objects =
        for {:event, [_, _, :object], m, meta} <- drain_mailbox(0), do: {meta.action, m.bytes}

      assert length(objects) == 11
      assert Enum.count(objects, &match?({:copied, _}, &1)) == 10
      assert {:deleted, 0} in objects

      assert {:error, _} = Sync.run(c.source, c.source, delete: true)
      refute_received {:event, [:objectstorex, :sync, :start], _, _}
    end
  end

  describe "checkpoints" do
    test "a rerun skips what the checkpoint says is done, without comparing again", c do
      file = Path.join(c.dir, "run.ckpt")
      tree = tree(100)
      populate!(c.source, nil, tree)

      assert {:ok, %Report{copied: 100}} = Sync.run(c.source, c.dest, checkpoint: file)
      # As if the run had been killed just before it could record its end.
      assert File.read!(file) =~ ~r/\nE - [0-9A-F]{8}\n$/
      strip_end!(file)

      # Changed at the destination after the run: a checkpointed object is not looked at again.
      {key, _} = hd(tree)
      :ok = ObjectStoreX.put(c.dest, key, "tampered, and of another size")
      attach_objects("ckpt-#{System.unique_integer()}")

      assert {:ok, %Report{copied: 0, skipped: 100}} =
               Sync.run(c.source, c.dest, checkpoint: file)

      assert Enum.all?(objects_seen(), &match?({:skipped, _, _}, &1))
      assert ObjectStoreX.get!(c.dest, key) == "tampered, and of another size"

      # That run completed: the next one with the file starts afresh, and compares.
      assert {:ok, %Report{copied: 1}} = Sync.run(c.source, c.dest, checkpoint: file)
      assert ObjectStoreX.get!(c.dest, key) == elem(hd(tree), 1)
    end

    test "a completed run's checkpoint does not hide objects added since", c do
      file = Path.join(c.dir, "added.ckpt")
      populate!(c.source, nil, tree(30))
      assert {:ok, %Report{copied: 30}} = Sync.run(c.source, c.dest, checkpoint: file)
      # "aaa" sorts before every key the first run marked done.
      :ok = ObjectStoreX.put(c.source, "aaa", "new")

      assert {:ok, %Report{copied: 1, skipped: 30}} = Sync.run(c.source, c.dest, checkpoint: file)

      assert ObjectStoreX.get!(c.dest, "aaa") == "new"
    end

    test "a torn last line is ignored and cut off; later records still count", c do
      file = Path.join(c.dir, "torn.ckpt")
      tree = tree(30)
      populate!(c.source, nil, tree)
      assert {:ok, _} = Sync.run(c.source, c.dest, checkpoint: file)

      File.write!(file, "D half-written-ke", [:append])
      :ok = ObjectStoreX.put(c.source, "later", "l")

      assert {:ok, %Report{copied: 1, skipped: 30}} = Sync.run(c.source, c.dest, checkpoint: file)

      refute File.read!(file) =~ "half-written"
      assert File.read!(file) |> String.ends_with?("\n")
    end

    test "a corrupt, foreign or unreadable checkpoint is an error naming the file", c do
      populate!(c.source, nil, tree(5))
      good = Path.join(c.dir, "good.ckpt")
      assert {:ok, _} = Sync.run(c.source, c.dest, checkpoint: good)

      corrupt = Path.join(c.dir, "corrupt.ckpt")
      [header, first | rest] = File.read!(good) |> String.split("\n")
      File.write!(corrupt, Enum.join([header, String.replace(first, "D ", "D x") | rest], "\n"))

      foreign = Path.join(c.dir, "foreign.ckpt")
      other = TestBackends.store!(:local)
      assert {:ok, _} = Sync.run(c.source, other, checkpoint: foreign)

      not_ours = Path.join(c.dir, "notes.txt")
      File.write!(not_ours, "my notes")

      for {path, why} <- [
            {corrupt, "is corrupt at line 2"},
            {foreign, "records a sync of other stores or prefixes"},
            {not_ours, "is not an ObjectStoreX sync checkpoint"},
            {c.dir, "is not a regular file"}
          ] do
        assert {:error, %Error{reason: :invalid_argument, message: message}} =
                 Sync.run(c.source, c.dest, checkpoint: path)

        assert message =~ "checkpoint #{path} #{why}"
      end

      assert File.read!(not_ours) == "my notes"
    end

    test "dry_run reads the checkpoint but never writes it", c do
      file = Path.join(c.dir, "dry.ckpt")
      populate!(c.source, nil, tree(20))

      assert {:ok, %Report{dry_run: true, copied: 20}} =
               Sync.run(c.source, c.dest, checkpoint: file, dry_run: true)

      refute File.exists?(file)
      assert ObjectStoreX.list!(c.dest) == []
      assert {:ok, %Report{copied: 20}} = Sync.run(c.source, c.dest, checkpoint: file)

      assert {:ok, %Report{copied: 0, skipped: 20}} =
               Sync.run(c.source, c.dest, checkpoint: file, dry_run: true)
    end

    test "loading keeps the last mark and only the keys done beyond it", c do
      file = Path.join(c.dir, "state.ckpt")
      populate!(c.source, nil, tree(200))

      assert {:ok, _} = Sync.run(c.source, c.dest, checkpoint: file, batch_size: 5)
      strip_end!(file)

      fingerprint =
        File.read!(file) |> String.split("\n") |> hd() |> String.split(" ") |> List.last()

      assert {:ok, %Checkpoint{} = state} = Checkpoint.read(file, fingerprint)
      assert state.mark == ObjectStoreX.list!(c.source) |> Enum.map(& &1.location) |> Enum.max()
      assert MapSet.size(state.done) == 0
      assert MapSet.size(state.failed) == 0
    end
  end

  describe "secrets" do
    test "never appear in inspect, reports, errors or telemetry", c do
      secret = "s3cr3t-#{System.unique_integer([:positive])}-value"

      store =
        ObjectStoreX.new!(:s3, Keyword.put(closed_port_opts(:s3), :secret_access_key, secret))

      populate!(c.source, nil, tree(3))
      id = "sync-secret-#{System.unique_integer()}"
      parent = self()

      attach_sync_events(id, parent)

      # Nothing listens there: each listing fails, as a source and as a destination.
      result = Sync.run(c.source, store)
      assert {:error, %Error{}} = result
      report = Sync.run(store, c.dest, dry_run: true)
      assert {:error, %Error{}} = report

      shown = [
        inspect(store),
        inspect(store, structs: false, limit: :infinity),
        :io_lib.format(~c"~p", [store]) |> IO.iodata_to_binary(),
        inspect(result, structs: false, limit: :infinity),
        inspect(report, structs: false, limit: :infinity),
        inspect(drain_mailbox(0), structs: false, limit: :infinity)
      ]

      for text <- shown, do: refute(text =~ secret)
    end

    test "a store rebuilt from its sealed arguments is the same store", c do
      local = TestBackends.store!(:local)
      :ok = ObjectStoreX.put(local, "x", "y")
      foreign = %{local | resource: make_ref()}
      assert {:ok, rebuilt} = ObjectStoreX.Store.local(foreign)
      assert ObjectStoreX.get!(rebuilt, "x") == "y"
      assert inspect(rebuilt) == inspect(local)

      assert {:error, %Error{message: message}} =
               ObjectStoreX.Store.local(%{c.source | resource: make_ref()})

      assert message =~ ":memory store"
    end
  end

  defp strip_end!(file) do
    File.write!(file, File.read!(file) |> String.replace(~r/E - [0-9A-F]{8}\n$/, ""))
  end

  # Every sync event of the runs the test process starts (the other async tests sync too), as
  # `{:event, event, measurements, metadata}`.
  defp attach_sync_events(id, parent) do
    :telemetry.attach_many(
      id,
      for(e <- [:start, :stop, :exception, :object], do: [:objectstorex, :sync, e]),
      fn event, m, meta, _ ->
        if self() == parent or parent in (Process.get(:"$callers") || []),
          do: send(parent, {:event, event, m, meta})
      end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)
  end
end
