defmodule ObjectStoreX.FuzzTest do
  # Thousands of seeded random calls with hostile arguments against every public function,
  # made by ObjectStoreX.Fuzz in a child VM: a VM abort there fails this test, with the call in
  # flight, instead of ending the test run.
  #
  #   OBJECTSTOREX_FUZZ_CALLS  calls per run (default 3000)
  #   OBJECTSTOREX_FUZZ_SEED   the seed (default random; printed on failure)
  #   OBJECTSTOREX_FUZZ_ONLY   replay just this call of the seed
  #
  #   mix test test/objectstorex/fuzz_test.exs  (or mix test --only fuzz)
  #
  # Not async: its calls have a time bound, and the async tests would share the two cores.
  use ExUnit.Case, async: false

  alias ObjectStoreX.{Fuzz, TestBackends}

  @moduletag :fuzz
  @moduletag timeout: 900_000

  # After a VM death the run resumes after the fatal call, so that one abort does not hide
  # every later finding; a few deaths are enough to show the pattern.
  @max_deaths 4
  # Address space of the child: a runaway allocation then aborts the child (a finding) instead
  # of taking the memory of a shared machine. The VM and the native library need well under it.
  @vmem_kb 8 * 1_048_576
  # A child that stops making progress (a scheduler held by native code) is killed by this.
  @child_bound_s 600

  test "no VM death, raise, stray message or hang from hostile arguments" do
    calls = env_int("OBJECTSTOREX_FUZZ_CALLS", 3000)
    seed = env_int("OBJECTSTOREX_FUZZ_SEED", :rand.uniform(2 ** 31 - 1))
    only = env_int("OBJECTSTOREX_FUZZ_ONLY", 0)

    dir = TestBackends.tmp_dir!("fuzz")
    cwd = Path.join(dir, "cwd/a/b")
    File.mkdir_p!(cwd)
    on_exit(fn -> File.rm_rf(dir) end)

    {started, runs} = :timer.tc(fn -> run_children(seed, calls, only, dir, cwd, 1, []) end)
    runs = Enum.reverse(runs)
    deaths = for {:died, death} <- runs, do: death
    summaries = for {:finished, line} <- runs, do: line
    classes = read_classes(dir)

    findings = Enum.sum(Enum.map(classes, & &1.count))
    if only > 0, do: IO.puts(Enum.map_join(runs, "\n", &inspect/1))

    report =
      "seed #{seed}, #{calls} calls, #{div(started, 1000)} ms: #{length(deaths)} VM death(s), " <>
        "#{findings} finding(s) in #{length(classes)} class(es). " <>
        "Rerun with OBJECTSTOREX_FUZZ_SEED=#{seed} OBJECTSTOREX_FUZZ_CALLS=#{calls}\n\n" <>
        Enum.map_join(deaths, "\n", &format_death(&1, seed)) <>
        Fuzz.format_classes(classes, seed)

    assert deaths == [] and classes == [] and summaries != [], report

    for line <- summaries, do: assert(line =~ ~r/ findings=0 classes=0$/, report)
  end

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      "" -> default
      value -> String.to_integer(value)
    end
  end

  # Runs the child from call `from`; after a death, again from the call after the fatal one.
  defp run_children(seed, calls, only, dir, cwd, from, runs) do
    {out, status} = child(seed, calls, from, only, dir, cwd)

    case {status, Regex.run(~r/^FUZZ SUMMARY .*$/m, out)} do
      {0, [line]} ->
        [{:finished, line} | runs]

      _ ->
        {index, call} = last_call(dir)
        death = %{status: status, index: index, call: call, tail: tail(out, 15)}
        runs = [{:died, death} | runs]
        deaths = Enum.count(runs, &match?({:died, _}, &1))

        if only == 0 and index != nil and index < calls and deaths < @max_deaths,
          do: run_children(seed, calls, only, dir, cwd, index + 1, runs),
          else: runs
    end
  end

  defp child(seed, calls, from, only, dir, cwd) do
    ebin = Path.wildcard(Path.join(Mix.Project.build_path(), "lib/*/ebin"))

    command =
      ["timeout", "-s", "KILL", "#{@child_bound_s}", System.find_executable("elixir")] ++
        Enum.flat_map(ebin, &["-pa", &1]) ++ ["-e", "ObjectStoreX.Fuzz.main()"]

    System.cmd("sh", ["-c", "ulimit -v #{@vmem_kb} && exec \"$@\"", "sh" | command],
      cd: cwd,
      env:
        clean_env() ++ [{"OBJECTSTOREX_FUZZ_CHILD", "#{seed}:#{calls}:#{from}:#{only}:#{dir}"}],
      stderr_to_stdout: true
    )
  end

  # The child sees no cloud credentials or endpoints, so no store it builds could reach one.
  defp clean_env do
    for {name, _} <- System.get_env(),
        String.match?(name, ~r/^(AWS|AZURE|AZURITE|GOOGLE|GCS)_|^SERVICE_ACCOUNT$|_PROXY$/i),
        do: {name, nil}
  end

  # The last call the child began, and whether it had returned: the call in flight when the VM
  # died, or the one before the death if the abort came from work left running in the background.
  defp last_call(dir) do
    lines =
      case File.read(Path.join(dir, "calls.log")) do
        {:ok, log} -> log |> String.split("\n", trim: true) |> Enum.reverse()
        {:error, _} -> []
      end

    Enum.find_value(lines, {nil, nil}, fn line ->
      case Regex.run(~r/^CALL (\d+) (.*)$/, line) do
        [_, i, call] ->
          returned? = Enum.any?(lines, &String.starts_with?(&1, "END #{i} "))
          {String.to_integer(i), if(returned?, do: "(returned) ", else: "(in flight) ") <> call}

        nil ->
          nil
      end
    end)
  end

  defp tail(out, n), do: out |> String.split("\n") |> Enum.take(-n) |> Enum.join("\n    ")

  # Every child appends its findings; one class found by several children is reported once.
  defp read_classes(dir), do: dir |> Fuzz.read_findings() |> Fuzz.classify()

  defp format_death(death, seed) do
    """
    VM DEATH (exit status #{death.status}) at or after call #{death.index}:
        #{death.call}
      replay with OBJECTSTOREX_FUZZ_SEED=#{seed} OBJECTSTOREX_FUZZ_ONLY=#{death.index}
      last output:
        #{death.tail}
    """
  end
end
