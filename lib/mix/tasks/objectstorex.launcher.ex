defmodule Mix.Tasks.Objectstorex.Launcher do
  @shortdoc "Writes a script that runs the objectstorex.* tasks without Mix's start-up"

  @moduledoc """
  Compiles the project and writes an executable shell script that runs the
  `mix objectstorex.*` tasks from the compiled code, without Mix:

      MIX_ENV=prod mix objectstorex.launcher [--output PATH]
      _build/prod/bin/objectstorex sync s3://bucket/data /srv/data

  `objectstorex TASK ARGS` takes the arguments of `mix objectstorex.TASK ARGS` and gives the
  same output and exit status (see `ObjectStoreX.CLI.Main`). It starts `erl` with only the
  compiled applications of this build (`_build/ENV/lib/*/ebin`, with the consolidated
  protocols) and Elixir's `elixir`, `logger` and `mix` on the code path, and goes straight
  into the task: it does not load `mix.exs`, check dependencies or compile. That saves Mix's
  start-up, a second or more, on every run. Measured on a shared 2-core machine
  (bench/SYNC.md), a sync of an empty directory took 0.54 s whole with the launcher, as long
  as `elixir -e ':ok'` doing nothing (0.55 s), against 1.58 s with `mix objectstorex.sync`; a
  bare `erl` start alone took 0.34 s.

  The script holds absolute paths: write it again after moving the project, the build
  directory or Erlang/Elixir, and run `mix compile` (in the same `MIX_ENV`) after changing the
  code. Application configuration from `config/*.exs` is not loaded. Erlang flags can be given
  in `ERL_FLAGS` (e.g. `ERL_FLAGS="-name sync@host"` for `sync --nodes` across machines). On
  Ctrl-C the VM stops at once (`+Bd`), as a command-line tool does; an interrupted `sync`
  with `--checkpoint` resumes from its checkpoint.

  ## Options

    * `--output PATH` - where to write the script, default `_build/ENV/bin/objectstorex`
  """

  use Mix.Task

  @task "objectstorex.launcher"

  @impl Mix.Task
  def run(args) do
    {opts, argv} = ObjectStoreX.CLI.parse!(@task, args, output: :string)
    if argv != [], do: ObjectStoreX.CLI.fail!(@task, "unexpected argument #{hd(argv)}")

    Mix.Task.run("compile", [])

    path =
      Path.expand(opts[:output] || Path.join([Mix.Project.build_path(), "bin", "objectstorex"]))

    File.mkdir_p!(Path.dirname(path))
    File.write!(path, script(erl!(), code_paths()))
    File.chmod!(path, 0o755)
    Mix.shell().info("wrote #{Path.relative_to_cwd(path)}")
  end

  @doc "The launcher script's text, for `erl` at `erl` with `paths` on the code path."
  @spec script(String.t(), [String.t()]) :: String.t()
  def script(erl, paths) do
    pa = Enum.map_join(paths, " ", &("-pa " <> shell_quote(&1)))

    """
    #!/bin/sh
    # Runs `mix objectstorex.TASK ARGS` as `objectstorex TASK ARGS`, from the compiled code and
    # without Mix's start-up. Written by `mix objectstorex.launcher`: write it again after
    # moving the project or Erlang/Elixir.
    exec #{shell_quote(erl)} -noshell +Bd #{pa} -s Elixir.ObjectStoreX.CLI.Main main -extra "$@"
    """
  end

  # This build's compiled applications (the project, ObjectStoreX when it is a dependency, and
  # the other dependencies) and the Elixir applications the tasks use. Erlang/OTP's own
  # applications are on erl's default path.
  defp code_paths do
    build = Path.wildcard(Path.join([Mix.Project.build_path(), "lib", "*", "ebin"]))

    elixir =
      for app <- [:elixir, :logger, :mix] do
        case :code.lib_dir(app, :ebin) do
          {:error, reason} ->
            ObjectStoreX.CLI.error!(@task, "no #{app} on the code path: #{reason}")

          dir ->
            Path.expand(List.to_string(dir))
        end
      end

    Enum.sort(build) ++ elixir ++ consolidated()
  end

  # The consolidated protocols, as `mix run` loads them: without them every Enumerable and
  # Collectable call looks its implementation up at run time. Last, because erl puts the last
  # `-pa` directory first on the code path, ahead of Elixir's unconsolidated protocols.
  defp consolidated do
    path = Mix.Project.consolidation_path()

    if Mix.Project.config()[:consolidate_protocols] != false and File.dir?(path),
      do: [path],
      else: []
  end

  defp erl! do
    System.find_executable("erl") || ObjectStoreX.CLI.error!(@task, "erl is not on PATH")
  end

  defp shell_quote(text), do: "'" <> String.replace(text, "'", ~S('\'')) <> "'"
end
