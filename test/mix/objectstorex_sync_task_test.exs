defmodule Mix.Tasks.ObjectstorexSyncTaskTest do
  # mix objectstorex.sync in-process, between local directories and the run's memory store.
  # Not async: capturing standard error swaps the VM-wide :standard_error device.
  use ExUnit.Case, async: false

  import ObjectStoreX.SyncHelpers
  import ObjectStoreX.TestHelpers, only: [run_mix_task: 2]

  alias ObjectStoreX.TestBackends

  @task "objectstorex.sync"

  setup do
    dir = TestBackends.tmp_dir!("synctask")
    on_exit(fn -> File.rm_rf(dir) end)
    %{dir: dir}
  end

  test "syncs a directory to another, then nothing; dry run, delete, checkpoint", %{dir: dir} do
    src = Path.join(dir, "src")
    dst = Path.join(dir, "dst")
    tree = tree(60)
    populate!(ObjectStoreX.new!(:local, root: src), nil, tree)
    ckpt = Path.join(dir, "ckpt")

    {:ok, out, _} = run_mix_task(@task, ["--no-progress", "--checkpoint", ckpt, src, dst])

    assert out =~
             ~r/^synced .*src -> .*dst: listed 60, copied 60 .*skipped 0, deleted 0, failed 0/

    assert_holds!(ObjectStoreX.new!(:local, root: dst), nil, tree)

    {:ok, out, _} = run_mix_task(@task, ["--no-progress", src, dst])
    assert out =~ "listed 60, copied 0 (0 B), skipped 60"

    File.write!(Path.join(dst, "extra"), "x")

    {:ok, out, _} =
      run_mix_task(@task, ["--no-progress", "--dry-run", "--delete", "--checksum", src, dst])

    assert out =~ ~r/^would sync .* deleted 1, failed 0/
    assert File.exists?(Path.join(dst, "extra"))

    {:ok, out, _} =
      run_mix_task(@task, ["--progress", "--delete", "--concurrency", "2", src, dst])

    assert out =~ "deleted 1, failed 0"
    refute File.exists?(Path.join(dst, "extra"))
  end

  test "failures are listed one per line and fail the task", %{dir: dir} do
    src = Path.join(dir, "src")
    dst = Path.join(dir, "dst")
    populate!(ObjectStoreX.new!(:local, root: src), nil, [{"d/a", "1"}, {"d/b", "2"}, {"e", "3"}])
    # A file where a directory is needed: both copies under d/ fail.
    File.mkdir_p!(dst)
    File.write!(Path.join(dst, "d"), "in the way")

    assert {{:error, message}, out, err} = run_mix_task(@task, ["--no-progress", src, dst])
    assert message =~ "2 of 3 objects failed"
    assert out =~ "copied 1"
    assert err =~ ~r/^failed d\/a: /m
    assert err =~ ~r/^failed d\/b: /m
  end

  test "--listing tree lists a key-ordered source by directory, to the same result", %{dir: dir} do
    {:ok, memory} = ObjectStoreX.CLI.Credentials.open(%{scheme: "memory"})
    prefix = "listing-#{System.unique_integer([:positive])}"
    tree = tree(50)
    populate!(memory, prefix, tree)
    dst = Path.join(dir, "dst")

    for mode <- ["tree", "TREE", "flat"] do
      {:ok, out, _} =
        run_mix_task(@task, ["--no-progress", "--listing", mode, "memory://" <> prefix, dst])

      assert out =~ "listed 50"
    end

    assert_holds!(ObjectStoreX.new!(:local, root: dst), nil, tree)
  end

  test "bad arguments name what is wrong", %{dir: dir} do
    assert {{:error, m}, _, _} = run_mix_task(@task, [dir])
    assert m =~ "expected SRC and DST"
    assert {{:error, m}, _, _} = run_mix_task(@task, ["--bogus", dir, dir])
    assert m =~ "unknown option --bogus"
    assert {{:error, m}, _, _} = run_mix_task(@task, ["--delete", dir, Path.join(dir, "sub")])
    assert m =~ "overlapping prefixes"
    assert {{:error, m}, _, _} = run_mix_task(@task, ["--listing", "deep", dir, dir <> "b"])
    assert m =~ "--listing must be flat or tree, got: deep"

    assert {{:error, m}, _, _} =
             run_mix_task(@task, ["--checkpoint", dir, dir <> "a", dir <> "b"])

    assert m =~ "checkpoint #{dir} is not a regular file"

    assert {{:error, m}, _, _} = run_mix_task(@task, ["--part-size", "1MiB", dir, dir <> "b"])
    assert m =~ "--part-size must be at least 5MiB"
    assert {{:error, m}, _, _} = run_mix_task(@task, ["--part-size", "lots", dir, dir <> "b"])
    assert m =~ "--part-size must be a size such as 8MiB"

    assert {{:error, m}, _, _} = run_mix_task(@task, ["--part-concurrency", "0", dir, dir <> "b"])

    assert m =~ "--part-concurrency must be a positive integer"
  end

  test "--part-size and --part-concurrency reach each copy", %{dir: dir} do
    src = Path.join(dir, "src")
    tree = tree(3, 1, 11 * 1_048_576)
    populate!(ObjectStoreX.new!(:local, root: src), nil, tree)
    dst = Path.join(dir, "dst")

    # Sync validates them as each copy would: a value out of range is refused before any copy.
    assert {{:error, m}, _, _} =
             run_mix_task(@task, ["--no-progress", "--part-concurrency", "5000", src, dst])

    assert m =~ "max_concurrency"
    refute File.exists?(dst)

    {:ok, out, _} =
      run_mix_task(@task, [
        "--no-progress",
        "--part-size",
        "5MiB",
        "--part-concurrency",
        "3",
        src,
        dst
      ])

    assert out =~ "listed 4, copied 4"
    assert_holds!(ObjectStoreX.new!(:local, root: dst), nil, tree)
  end
end
