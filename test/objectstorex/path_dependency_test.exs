defmodule ObjectStoreX.PathDependencyTest do
  # A fresh Mix project that depends on this repository by path must build it (native library
  # included) and use it. The cargo target directory is shared with the outer build, so cargo
  # has nothing to rebuild; only the Elixir sources are compiled again.
  use ExUnit.Case, async: true

  @moduletag :path_dependency
  @moduletag timeout: 600_000

  alias ObjectStoreX.TestBackends

  @repo Path.expand("../..", __DIR__)

  test "a Mix project with {:objectstorex, path: ...} builds it and runs a put/get" do
    mix = System.find_executable("mix")
    assert mix, "mix is not on the PATH"

    dir = TestBackends.tmp_dir!("pathdep")
    on_exit(fn -> File.rm_rf(dir) end)

    File.write!(Path.join(dir, "mix.exs"), """
    defmodule PathDepCheck.MixProject do
      use Mix.Project

      def project do
        [
          app: :path_dep_check,
          version: "0.1.0",
          elixir: "~> 1.14",
          deps: [{:objectstorex, path: #{inspect(@repo)}}]
        ]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.mkdir_p!(Path.join(dir, "lib"))

    script = ~S"""
    {:ok, store} = ObjectStoreX.new(:memory)
    :ok = ObjectStoreX.put(store, "greeting.txt", ["hello ", "from a path dependency"])
    {:ok, data, meta} = ObjectStoreX.get(store, "greeting.txt")
    {:ok, part, _} = ObjectStoreX.get(store, "greeting.txt", range: {0, 4})
    IO.puts("PATHDEP_RESULT #{data}|#{meta.size}|#{part}")
    """

    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(@repo, "target")

    env = [
      {"MIX_ENV", "dev"},
      {"CARGO_TARGET_DIR", target_dir},
      {"MIX_BUILD_PATH", nil},
      {"MIX_BUILD_ROOT", nil},
      {"MIX_DEPS_PATH", nil},
      {"MIX_EXS", nil},
      {"MIX_LOCKFILE", nil},
      {"MIX_TARGET", nil}
    ]

    {output, status} =
      System.cmd(mix, ["run", "-e", script], cd: dir, env: env, stderr_to_stdout: true)

    assert status == 0, "mix run failed (exit #{status}):\n#{output}"
    assert output =~ "PATHDEP_RESULT hello from a path dependency|28|hello"
    assert File.exists?(Path.join([dir, "_build", "dev", "lib", "objectstorex", "ebin"]))
  end
end
