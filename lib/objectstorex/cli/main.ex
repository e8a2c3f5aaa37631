defmodule ObjectStoreX.CLI.Main do
  @moduledoc """
  The entry point of the launcher script that `mix objectstorex.launcher` writes: runs one of
  the `mix objectstorex.*` tasks from the compiled code, without Mix loading a project.

      objectstorex TASK [ARGS]       # TASK: sync, cp, ls, cat, rm or sign
      objectstorex help [TASK]

  The arguments, output and exit status are those of `mix objectstorex.TASK ARGS`; only the
  start-up differs. `mix` first loads `mix.exs`, checks the dependencies and compiles when
  needed (a second or more); the launcher starts the VM with the compiled code on its path and
  nothing else (see `mix help objectstorex.launcher` for figures).
  """

  @tasks %{
    "sync" => Mix.Tasks.Objectstorex.Sync,
    "cp" => Mix.Tasks.Objectstorex.Cp,
    "ls" => Mix.Tasks.Objectstorex.Ls,
    "cat" => Mix.Tasks.Objectstorex.Cat,
    "rm" => Mix.Tasks.Objectstorex.Rm,
    "sign" => Mix.Tasks.Objectstorex.Sign
  }

  @doc """
  Runs the task named by the VM's plain arguments (those after `-extra`) and halts the VM with
  its exit status. Called by the launcher as `erl ... -s Elixir.ObjectStoreX.CLI.Main main`.
  """
  @spec main() :: no_return()
  def main do
    status =
      :init.get_plain_arguments()
      |> Enum.map(&List.to_string/1)
      |> run()

    System.halt(status)
  end

  @doc """
  Runs `objectstorex.TASK` with `args` and returns the exit status `mix` would give: 0 on
  success, the `Mix.Error`'s status (1) after printing its message on standard error, 1 after
  any other exception (printed with its stack trace), 2 for an unknown task.
  """
  @spec run([String.t()]) :: non_neg_integer()
  def run(["help"]), do: usage(:stdio, 0)
  def run([flag]) when flag in ["-h", "--help"], do: usage(:stdio, 0)
  def run(["help", name]) when is_map_key(@tasks, name), do: help(@tasks[name])
  def run([name | args]) when is_map_key(@tasks, name), do: run_task(@tasks[name], args)
  def run(_), do: usage(:stderr, 2)

  defp run_task(task, args) do
    preload()
    # The elixir application sets standard output to binary UTF-8 (as `elixir` and `mix` have
    # it); the mix application holds the state that Mix.Task and Mix.Project read (no project).
    {:ok, _} = Application.ensure_all_started(:elixir)
    {:ok, _} = Application.ensure_all_started(:mix)

    try do
      task.run(args)
      0
    rescue
      e in Mix.Error ->
        IO.puts(:stderr, "** (Mix) " <> Exception.message(e))
        if is_integer(e.mix) and e.mix > 0, do: e.mix, else: 1

      e ->
        IO.puts(:stderr, Exception.format(:error, e, __STACKTRACE__))
        1
    catch
      :exit, {:shutdown, status} when is_integer(status) ->
        status

      kind, reason ->
        IO.puts(:stderr, Exception.format(kind, reason, __STACKTRACE__))
        1
    end
  end

  defp help(task) do
    {:ok, _} = Application.ensure_all_started(:elixir)

    case Code.fetch_docs(task) do
      {:docs_v1, _, _, _, %{"en" => doc}, _, _} -> IO.puts(doc)
      _ -> IO.puts("no documentation compiled for #{inspect(task)}: see `mix help`")
    end

    0
  end

  # Loaded on first call, one at a time, these modules took most of a short run's time: the
  # JIT compiles each as it loads. Loaded together, they compile on every scheduler at once.
  # Any that a task does not reach cost little; any missing here still load when called.
  @stdlib [
    Access,
    Agent,
    Agent.Server,
    Application,
    DynamicSupervisor,
    Enum,
    Enumerable,
    Enumerable.Function,
    Enumerable.List,
    Enumerable.MapSet,
    File,
    GenServer,
    Inspect,
    Inspect.Algebra,
    Inspect.Opts,
    IO,
    Keyword,
    List,
    Logger,
    Map,
    MapSet,
    Mix,
    Mix.Task,
    Mix.Utils,
    Mix.State,
    OptionParser,
    Path,
    Process,
    Range,
    Stream,
    String,
    String.Chars,
    String.Chars.Integer,
    Supervisor,
    System,
    Task,
    Task.Supervised,
    Task.Supervisor
  ]

  defp preload do
    :ok = Application.load(:objectstorex) |> loaded()
    {:ok, own} = :application.get_key(:objectstorex, :modules)
    _ = :code.ensure_modules_loaded(own ++ @stdlib)
    :ok
  end

  defp loaded(:ok), do: :ok
  defp loaded({:error, {:already_loaded, :objectstorex}}), do: :ok

  defp usage(device, status) do
    IO.puts(device, """
    usage: objectstorex TASK [ARGS]    (as `mix objectstorex.TASK [ARGS]`)
           objectstorex help [TASK]

    tasks: #{@tasks |> Map.keys() |> Enum.sort() |> Enum.join(", ")}\
    """)

    status
  end
end
