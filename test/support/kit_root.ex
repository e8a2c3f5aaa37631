defmodule ObjectStoreX.KitRoot do
  @moduledoc """
  Where the kit's isolation tests (test/kit) put their stores in this run: one root prefix per
  VM, under which `ObjectStoreX.Test.isolated_store/2` gives every test a prefix of its own. The
  final check (test/kit/kit_cleanup_check_test.exs) lists the root on each backend and expects
  nothing left.
  """

  alias ObjectStoreX.TestBackends

  @doc "This run's root prefix."
  def prefix, do: state().prefix

  @doc "This run's local root directory."
  def local_root, do: state().local_root

  defp state do
    case :persistent_term.get(__MODULE__, nil) do
      nil ->
        :global.trans({__MODULE__, self()}, fn ->
          case :persistent_term.get(__MODULE__, nil) do
            nil ->
              state = %{
                prefix: TestBackends.unique_prefix("kit"),
                local_root: TestBackends.tmp_dir!("kit")
              }

              :persistent_term.put(__MODULE__, state)
              state

            state ->
              state
          end
        end)

      state ->
        state
    end
  end

  @doc """
  The store spec the kit's tests on `backend` use, rooted at `prefix/0`: written in each of the
  forms `ObjectStoreX.Test` accepts (provider and options, URL and options).
  """
  def spec(:local), do: {:local, root: local_root(), prefix: prefix()}

  def spec(:s3) do
    opts = TestBackends.store_opts(:s3)
    {"s3://#{opts[:bucket]}/#{prefix()}", Keyword.drop(opts, [:bucket, :prefix])}
  end

  def spec(:azure), do: {:azure, Keyword.put(TestBackends.store_opts(:azure), :prefix, prefix())}

  @doc "A store on `backend` scoped to the root itself, to look at what the tests left."
  def root_store(backend) do
    case spec(backend) do
      {url, opts} when is_binary(url) -> ObjectStoreX.from_url!(url, opts)
      {provider, opts} -> ObjectStoreX.new!(provider, opts)
    end
  end
end
