defmodule Mix.Tasks.Compile.ObjectstorexNative do
  @shortdoc "Builds the ObjectStoreX native library with cargo"
  @moduledoc """
  Builds `native/objectstorex` with `cargo build --release` and installs the library into the
  application's `priv/native` directory, where `ObjectStoreX.Native` loads it.

  cargo runs on every compile (a no-op build takes a fraction of a second); the library is
  copied only when its bytes changed. The cargo target directory is the repository's `target/`,
  or `CARGO_TARGET_DIR` when set, so every `MIX_ENV` and every project that uses this library as
  a `path:` dependency share one build.
  """
  use Mix.Task.Compiler

  @root Path.expand("..", __DIR__)
  @crate "objectstorex"

  @impl true
  def run(_args) do
    cargo = System.find_executable("cargo") || Mix.raise(missing_cargo())
    installed = installed_path()
    first_build? = not File.exists?(installed)

    if first_build? do
      Mix.shell().info("==> objectstorex: building the native library (cargo build --release)")
    end

    args =
      ["build", "--release", "--manifest-path", Path.join(@root, "native/#{@crate}/Cargo.toml")] ++
        ["--target-dir", target_dir()] ++ if(first_build?, do: [], else: ["--quiet"])

    case System.cmd(cargo, args, cd: @root, stderr_to_stdout: true, into: IO.stream(:stdio, :line)) do
      {_, 0} -> install(built_path(), installed)
      {_, status} -> Mix.raise("cargo build failed with exit status #{status} (see output above)")
    end
  end

  @impl true
  def clean do
    File.rm(installed_path())
    :ok
  end

  defp target_dir, do: System.get_env("CARGO_TARGET_DIR") || Path.join(@root, "target")

  defp built_path do
    ext = if match?({:unix, :darwin}, :os.type()), do: "dylib", else: "so"
    Path.join([target_dir(), "release", "lib#{@crate}.#{ext}"])
  end

  # Always `.so`: that is the name `:erlang.load_nif/2` looks for on every Unix.
  defp installed_path,
    do: Path.join([Mix.Project.app_path(), "priv", "native", "lib#{@crate}.so"])

  defp install(built, installed) do
    unless File.exists?(built), do: Mix.raise("cargo reported success but #{built} is missing")

    if File.exists?(installed) and File.read!(built) == File.read!(installed) do
      {:noop, []}
    else
      File.mkdir_p!(Path.dirname(installed))

      # Copy then rename, so a running VM that has the old file mapped is never handed half a file.
      tmp = installed <> ".tmp#{System.unique_integer([:positive])}"
      File.cp!(built, tmp)
      File.rename!(tmp, installed)
      {:ok, []}
    end
  end

  defp missing_cargo do
    """
    ObjectStoreX needs Rust's cargo to build its native library, and `cargo` is not on the PATH.
    Install the Rust toolchain (rustup, or your distribution's `cargo` package, Rust >= 1.91),
    then run `mix compile` again.
    """
  end
end
