defmodule ObjectStoreX.SyncCrashTest do
  # The syncing OS process is killed (SIGKILL) mid-run; a rerun with the same checkpoint must
  # leave everything present and byte-identical without copying again what the first run
  # completed.
  use ExUnit.Case, async: true
  @moduletag backend: :s3
  @moduletag timeout: 300_000

  import ObjectStoreX.SyncHelpers

  alias ObjectStoreX.{Sync, TestBackends, TestHelpers}
  alias ObjectStoreX.Sync.{Checkpoint, Report}

  test "kill -9 mid-run, then resume with the checkpoint" do
    dir = TestBackends.tmp_dir!("crash")
    on_exit(fn -> File.rm_rf(dir) end)
    root = Path.join(dir, "source")
    file = Path.join(dir, "sync.ckpt")

    source = ObjectStoreX.new!(:local, root: root)
    tree = tree(800)
    populate!(source, nil, tree)
    dest_opts = TestBackends.store_opts(:s3)
    dest = TestBackends.store!(:s3, prefix: dest_opts[:prefix])

    code = """
    source = ObjectStoreX.new!(:local, root: #{inspect(root)})
    dest = ObjectStoreX.new!(:s3, #{inspect(dest_opts, limit: :infinity)})
    ObjectStoreX.Sync.run!(source, dest,
      checkpoint: #{inspect(file)},
      concurrency: 2,
      batch_size: 4,
      on_progress: fn p -> IO.puts("COPIED \#{p.copied}") end
    )
    IO.puts("FINISHED")
    """

    port = TestHelpers.child_vm_port(code)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    assert wait_copied(port, 150) == :reached, "the child finished before it could be killed"
    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
    assert_receive {^port, {:exit_status, status}}, 30_000
    assert status != 0

    # What the killed run recorded as done.
    assert {:ok, state} = Checkpoint.read(file, fingerprint(file))
    done_before = Enum.filter(Map.keys(Map.new(tree)), &Checkpoint.done?(state, &1))
    assert length(done_before) >= 100
    assert length(done_before) < length(tree)

    attach_objects("crash-#{System.unique_integer()}")
    assert {:ok, %Report{failed: []} = report} = Sync.run(source, dest, checkpoint: file)
    copied = for {:copied, key, _} <- objects_seen(), do: key

    assert copied != []

    assert MapSet.disjoint?(MapSet.new(copied), MapSet.new(done_before)),
           "objects the killed run completed were copied again"

    assert report.skipped >= length(done_before)
    assert_holds!(dest, nil, tree)
  end

  defp wait_copied(port, n) do
    receive do
      {^port, {:data, {:eol, "COPIED " <> count}}} ->
        if String.to_integer(count) >= n, do: :reached, else: wait_copied(port, n)

      {^port, {:data, {:eol, "FINISHED"}}} ->
        :finished

      {^port, {:data, _other}} ->
        wait_copied(port, n)

      {^port, {:exit_status, status}} ->
        flunk("the child exited (#{status}) before copying #{n} objects")
    after
      120_000 -> flunk("the child copied fewer than #{n} objects in 120 s")
    end
  end

  defp fingerprint(file),
    do: File.read!(file) |> String.split("\n") |> hd() |> String.split(" ") |> List.last()
end
