Code.require_file("mix/compile_native.exs", __DIR__)

defmodule ObjectStoreX.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :objectstorex,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:objectstorex_native | Mix.compilers()],
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      description: "Fast, memory-bounded object storage for Elixir over Rust's object_store"
    ]
  end

  def application do
    [extra_applications: [:logger, :crypto | test_applications(Mix.env())]]
  end

  # The tests fetch presigned URLs with OTP's :httpc.
  defp test_applications(:test), do: [:inets]
  defp test_applications(_), do: []

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
