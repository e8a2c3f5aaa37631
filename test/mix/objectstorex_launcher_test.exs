defmodule Mix.Tasks.ObjectstorexLauncherTest do
  # mix objectstorex.launcher writes a script; the script, run as its own OS process, runs the
  # objectstorex.* tasks from the compiled code without Mix. Not async: writing the script runs
  # a task in this VM, which captures the VM-wide standard error.
  use ExUnit.Case, async: false

  import ObjectStoreX.SyncHelpers
  import ObjectStoreX.TestHelpers, only: [run_mix_task: 2]

  alias ObjectStoreX.TestBackends

  # A VM start per run: on a loaded machine several can outlast ExUnit's 60 s default.
  @moduletag timeout: 300_000

  setup_all do
    dir = TestBackends.tmp_dir!("launcher")
    on_exit(fn -> File.rm_rf(dir) end)
    launcher = Path.join(dir, "bin/objectstorex")
    {:ok, out, _} = run_mix_task("objectstorex.launcher", ["--output", launcher])
    assert out =~ "wrote "
    %{launcher: launcher, dir: dir}
  end

  setup %{dir: dir} do
    dir = Path.join(dir, "run-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    %{dir: dir}
  end

  # Standard output and error apart, so that the summary line is known to be on stdout.
  defp launch(launcher, args) do
    err = Path.join(System.tmp_dir!(), "launcher-err-#{System.unique_integer([:positive])}")

    try do
      {out, status} =
        System.cmd("sh", ["-c", ~s("$0" "$@" 2>"#{err}"), launcher | args],
          env: [{"MIX_ENV", nil}, {"MIX_EXS", nil}]
        )

      {status, out, File.read!(err)}
    after
      File.rm(err)
    end
  end

  test "the script is executable and names the compiled code and the entry module", ctx do
    %{mode: mode} = File.stat!(ctx.launcher)
    assert Bitwise.band(mode, 0o111) == 0o111
    text = File.read!(ctx.launcher)
    assert text =~ ~r/^#!\/bin\/sh\n/
    assert text =~ "-pa '#{Mix.Project.compile_path()}'"
    # Last, so that erl puts the consolidated protocols first on the code path.
    assert text =~ "-pa '#{Mix.Project.consolidation_path()}' -s "
    assert text =~ "-s Elixir.ObjectStoreX.CLI.Main main -extra \"$@\""
  end

  test "runs a real sync, then an unchanged one that copies nothing", ctx do
    src = Path.join(ctx.dir, "src")
    dst = Path.join(ctx.dir, "dst")
    tree = tree(40)
    populate!(ObjectStoreX.new!(:local, root: src), nil, tree)

    {0, out, err} = launch(ctx.launcher, ["sync", "--no-progress", src, dst])
    assert out =~ ~r/^synced .*src -> .*dst: listed 40, copied 40 .*skipped 0, .*failed 0/
    assert err == ""
    assert_holds!(ObjectStoreX.new!(:local, root: dst), nil, tree)

    {0, out, _} = launch(ctx.launcher, ["sync", "--no-progress", src, dst])
    assert out =~ "listed 40, copied 0 (0 B), skipped 40"

    # The same options as the mix task: a dry run with --delete names what it would delete.
    File.write!(Path.join(dst, "extra"), "x")

    {0, out, _} =
      launch(ctx.launcher, ["sync", "--no-progress", "--dry-run", "--delete", src, dst])

    assert out =~ ~r/^would sync .*deleted 1, failed 0/
    assert File.exists?(Path.join(dst, "extra"))
  end

  test "a failed object gives a non-zero exit status and the task's messages", ctx do
    src = Path.join(ctx.dir, "src")
    populate!(ObjectStoreX.new!(:local, root: src), nil, tree(3))
    # The destination is a regular file: no object can be written under it.
    dst = Path.join(ctx.dir, "file")
    File.write!(dst, "not a directory")

    {status, out, err} = launch(ctx.launcher, ["sync", "--no-progress", src, dst])
    assert status == 1
    assert out =~ "failed 3"
    assert err =~ ~r/^failed /m
    assert err =~ "** (Mix) objectstorex.sync: 3 of 3 objects failed"
  end

  test "bad arguments and unknown tasks fail; help prints the task's documentation", ctx do
    {1, _, err} = launch(ctx.launcher, ["sync", "--bogus", "a", "b"])
    assert err =~ "objectstorex.sync: unknown option --bogus"

    {2, _, err} = launch(ctx.launcher, ["nosuchtask"])
    assert err =~ "usage: objectstorex TASK"

    {2, _, _} = launch(ctx.launcher, [])

    {0, out, _} = launch(ctx.launcher, ["help", "sync"])
    assert out =~ "mix objectstorex.sync [OPTIONS] SRC DST"
  end

  test "other tasks run too: cp and ls", ctx do
    file = Path.join(ctx.dir, "a.txt")
    File.write!(file, "hello")
    {0, _, _} = launch(ctx.launcher, ["cp", file, "file://#{ctx.dir}/copy/b.txt"])
    assert File.read!(Path.join(ctx.dir, "copy/b.txt")) == "hello"

    {0, out, _} = launch(ctx.launcher, ["ls", "file://#{ctx.dir}/copy"])
    assert out =~ "b.txt"
  end
end
