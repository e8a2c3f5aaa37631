defmodule ObjectStoreX.SyncNodesTest do
  # ObjectStoreX.Sync with workers on two peer nodes (OTP's :peer, on 127.0.0.1), one of them
  # killed (SIGKILL) mid-run: the run must still copy every object exactly and leave no
  # multipart upload in progress. Tagged :distributed: `mix test --exclude distributed` skips
  # it where distribution cannot start.
  use ExUnit.Case, async: false
  @moduletag backend: :s3
  @moduletag :distributed
  @moduletag timeout: 300_000

  import ObjectStoreX.SyncHelpers

  alias ObjectStoreX.{FaultProxy, Sync, TestBackends, TestHelpers}
  alias ObjectStoreX.Sync.Report

  @part 5 * 1_048_576

  setup_all do
    {_, 0} = System.cmd("epmd", ["-daemon"])

    unless Node.alive?() do
      name = :"osx_test_#{System.unique_integer([:positive])}@127.0.0.1"
      {:ok, _} = Node.start(name, :longnames)
    end

    :ok
  end

  defp peer! do
    paths =
      Enum.flat_map(:code.get_path(), fn path ->
        if List.starts_with?(path, :code.root_dir()), do: [], else: [~c"-pa", path]
      end)

    name = :"osx_peer_#{System.unique_integer([:positive])}"

    {:ok, pid, node} =
      :peer.start(%{
        name: name,
        host: ~c"127.0.0.1",
        longnames: true,
        args: [
          ~c"-setcookie",
          Atom.to_charlist(Node.get_cookie()),
          ~c"-connect_all",
          ~c"false" | paths
        ]
      })

    on_exit(fn ->
      try do
        :peer.stop(pid)
      catch
        _, _ -> :ok
      end
    end)

    node
  end

  test "a peer killed mid-run: its batches go to the other, every object arrives" do
    [a, b] = [peer!(), peer!()]
    dir = TestBackends.tmp_dir!("nodes")
    on_exit(fn -> File.rm_rf(dir) end)

    # A local source is the same directory on every node here (one machine).
    source = ObjectStoreX.new!(:local, root: dir)
    # The large objects sort last: the peer is killed while small ones are in flight, so
    # what it leaves unfinished are single PUTs (see "Several nodes" in ObjectStoreX.Sync).
    tree = tree(400, 3)
    populate!(source, nil, tree)
    dest = TestBackends.store!(:s3)

    parent = self()
    id = "nodes-#{System.unique_integer()}"

    :telemetry.attach(
      id,
      [:objectstorex, :sync, :object],
      fn _, _, meta, _ -> send(parent, {:object, meta.node, meta.action}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)

    run =
      Task.async(fn ->
        Sync.run(source, dest, nodes: [a, b], concurrency: 2, batch_size: 4, part_size: @part)
      end)

    wait_copies(a, 20)
    os_pid = :erpc.call(a, :os, :getpid, [])
    {_, 0} = System.cmd("kill", ["-9", List.to_string(os_pid)])

    assert {:ok, %Report{failed: []} = report} = Task.await(run, 240_000)
    assert report.listed == length(tree)
    assert report.copied == length(tree)
    refute a in Node.list()

    by_node = Enum.frequencies(for {:object, node, :copied} <- drain(), do: node)
    assert by_node[b] > 0

    assert_holds!(dest, nil, tree)
    assert TestHelpers.s3_uploads_in_progress(dest) == 0
  end

  test "a peer killed in the middle of a multipart upload: its upload is aborted by the run" do
    [a, b] = [peer!(), peer!()]
    dir = TestBackends.tmp_dir!("nodes-big")
    on_exit(fn -> File.rm_rf(dir) end)
    source = ObjectStoreX.new!(:local, root: dir)
    # Only objects of several parts: whatever a is copying when it dies is a multipart upload.
    tree = tree(0, 4, 8 * @part)
    populate!(source, nil, tree)
    # Parts are slow to arrive, so both nodes are in the middle of an upload for seconds.
    slow = {"PUT", ~r/[?&]partNumber=/, {:delay, 1_500}}
    proxy = FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [slow])
    dest = TestBackends.store!(:s3, endpoint: FaultProxy.url(proxy))

    :ok =
      :erpc.call(a, :telemetry, :attach, [
        "uploads-on-a",
        [:objectstorex, :upload, :start],
        &ObjectStoreX.SyncHelpers.forward/4,
        self()
      ])

    run =
      Task.async(fn ->
        Sync.run(source, dest, nodes: [a, b], concurrency: 1, batch_size: 1, part_size: @part)
      end)

    assert_receive {:telemetry, ^a, [:objectstorex, :upload, :start], _}, 60_000
    # With one object in flight per node, two uploads in progress means one is a's.
    assert TestHelpers.wait_until(fn -> TestHelpers.s3_uploads_in_progress(dest) == 2 end)
    os_pid = :erpc.call(a, :os, :getpid, [])
    {_, 0} = System.cmd("kill", ["-9", List.to_string(os_pid)])

    assert {:ok, %Report{failed: []} = report} = Task.await(run, 240_000)
    assert report.copied == length(tree)
    refute a in Node.list()
    assert_holds!(dest, nil, tree)
    assert TestHelpers.s3_uploads_in_progress(dest) == 0
  end

  test "the first batches go to the nodes in turn, so large objects spread across them" do
    [a, b] = [peer!(), peer!()]
    dir = TestBackends.tmp_dir!("nodes-spread")
    on_exit(fn -> File.rm_rf(dir) end)
    source = ObjectStoreX.new!(:local, root: dir)
    # Each past the 8 MiB a batch ends at: one object a batch.
    tree = tree(0, 4, 9 * 1_048_576)
    populate!(source, nil, tree)
    # The destination's listing answers late, so every worker of both nodes is waiting for
    # work when the first batch comes: which node gets it is the coordinator's choice alone.
    slow = {"GET", ~r/[?&]list-type=2/, {:delay, 1_500}}
    proxy = FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [slow])
    dest = TestBackends.store!(:s3, endpoint: FaultProxy.url(proxy))

    parent = self()
    id = "spread-#{System.unique_integer()}"

    :telemetry.attach(
      id,
      [:objectstorex, :sync, :object],
      fn _, m, meta, _ -> send(parent, {:object, meta.node, meta.action, m.bytes}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)

    assert {:ok, %Report{copied: 4, failed: []}} =
             Sync.run(source, dest, nodes: [a, b], concurrency: 4, part_size: @part)

    bytes =
      Enum.reduce(drain_bytes(), %{}, fn {node, n}, acc -> Map.update(acc, node, n, &(&1 + n)) end)

    # Four workers idle on each node, four batches: two each, not four on one node.
    assert bytes == %{a => 2 * 9 * 1_048_576, b => 2 * 9 * 1_048_576}
    assert_holds!(dest, nil, tree)
  end

  test "stores that cannot cross nodes are refused before anything" do
    node = peer!()
    memory = TestBackends.store!(:memory)
    local = TestBackends.store!(:local)

    assert {:error, %ObjectStoreX.Error{reason: :invalid_argument, message: message}} =
             Sync.run(memory, local, nodes: [node])

    assert message =~ ":memory store"
  end

  defp wait_copies(node, n, seen \\ 0) do
    if seen >= n do
      :ok
    else
      receive do
        {:object, ^node, :copied} -> wait_copies(node, n, seen + 1)
      after
        60_000 -> flunk("#{node} copied only #{seen} objects in 60 s")
      end
    end
  end

  defp drain_bytes(acc \\ []) do
    receive do
      {:object, node, :copied, bytes} -> drain_bytes([{node, bytes} | acc])
    after
      0 -> acc
    end
  end

  defp drain(acc \\ []) do
    receive do
      {:object, _, _} = msg -> drain([msg | acc])
    after
      0 -> acc
    end
  end
end
