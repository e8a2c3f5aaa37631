defmodule ObjectStoreX.Test do
  @moduledoc """
  ExUnit helpers for code that writes to object storage: an isolated store per test, cleaned
  up after it, and assertions on what a store holds. `ObjectStoreX.Case` packages them as a
  case template; `ObjectStoreX.Fault` makes a store fail on purpose.

      defmodule MyApp.ExportTest do
        use ExUnit.Case, async: true
        import ObjectStoreX.Test

        setup :isolated_store

        test "exports a report", %{store: store} do
          :ok = MyApp.Export.run(store, ~D[2025-01-31])
          assert_object(store, "reports/2025-01-31.csv", ~r/^date,total\\n/)
          assert_objects(store, "reports/", ["reports/2025-01-31.csv"])
        end
      end

  ## Which store a test gets

  By default a fresh `:memory` store per test: nothing is shared, nothing needs cleaning.

  Pointed at a real store, each test gets that store scoped to a prefix of its own,
  `ROOT/MODULE/TEST-RANDOM` (ROOT being the store's own `:prefix`, if any), sanitized into a
  valid path; everything under it is deleted when the test ends, whether it passed or failed.
  Tests never see each other's objects, so `async: true` is safe. The first of these that is set
  chooses the store:

    1. the `:store` option of `isolated_store/2`
    2. the test's `:objectstorex_store` tag (`@moduletag objectstorex_store: "file:///tmp/t"`)
    3. the `OBJECTSTOREX_TEST_STORE` environment variable, a store URL
    4. the application configuration: `config :objectstorex, :test_store, "s3://bucket/ci"`

  A store is given as a URL (see `ObjectStoreX.from_url/2`), `{url, options}`,
  `{provider, options}` (see `ObjectStoreX.new/2`) or `:memory`. Options the URL cannot carry
  (an endpoint, credentials) come from `config :objectstorex, :test_store_options, [...]` and
  from the `:options` option of `isolated_store/2`, merged in that order over the store's own.

      # config/test.exs
      config :objectstorex,
        test_store: System.get_env("OBJECTSTOREX_TEST_STORE", "memory://"),
        test_store_options: [endpoint: "http://127.0.0.1:9000", allow_http: true, region: "us-east-1"]
  """

  alias ObjectStoreX.{Error, Store}

  @env "OBJECTSTOREX_TEST_STORE"

  @typedoc "A store to test against: a URL, `{url, options}`, `{provider, options}` or `:memory`."
  @type spec :: String.t() | {String.t(), keyword()} | {Store.backend(), keyword()} | :memory

  @doc """
  A `setup` callback that puts an isolated store in the test context as `:store`; see "Which
  store a test gets" in the module documentation.

      setup :isolated_store
      setup context, do: ObjectStoreX.Test.isolated_store(context, store: "file:///tmp/t")

  Raises `ObjectStoreX.Error` if the store cannot be built. The cleanup after the test raises
  (failing the test) if objects are left under the test's prefix.

  ## Options

    * `:store` - the store to test against (see `t:spec/0`), before every other setting
    * `:options` - store options merged over the configured ones
  """
  @spec isolated_store(map(), keyword()) :: %{store: Store.t()}
  def isolated_store(context, opts \\ []) do
    opts = options!(opts)

    {provider_or_url, store_opts} =
      spec!(opts[:store] || context[:objectstorex_store] || default())

    extra =
      Application.get_env(:objectstorex, :test_store_options, [])
      |> Keyword.merge(opts[:options] || [])

    store_opts = Keyword.merge(store_opts, extra)

    case provider_or_url do
      :memory ->
        %{store: ObjectStoreX.new!(:memory, store_opts)}

      _ ->
        root = build!(provider_or_url, store_opts).prefix
        prefix = Enum.join(Enum.reject([root, unique(context)], &is_nil/1), "/")
        store = build!(provider_or_url, Keyword.put(store_opts, :prefix, prefix))
        ExUnit.Callbacks.on_exit({__MODULE__, prefix}, fn -> cleanup!(store) end)
        %{store: store}
    end
  end

  defp options!(opts) do
    case ObjectStoreX.Args.opts(opts, [:store, :options]) do
      {:ok, opts} -> opts
      {:error, error} -> raise error
    end
  end

  defp default do
    case System.get_env(@env) do
      url when is_binary(url) and url != "" -> url
      _ -> Application.get_env(:objectstorex, :test_store, :memory)
    end
  end

  defp spec!(:memory), do: {:memory, []}
  defp spec!("memory://" <> _), do: {:memory, []}
  defp spec!(url) when is_binary(url), do: {url, []}

  defp spec!({url_or_provider, opts})
       when (is_binary(url_or_provider) or is_atom(url_or_provider)) and is_list(opts),
       do: {url_or_provider, opts}

  defp spec!(other) do
    raise Error,
      reason: :invalid_argument,
      message:
        "the test store must be a URL, {url, options}, {provider, options} or :memory, got: " <>
          ObjectStoreX.Args.brief(other)
  end

  defp build!(url, opts) when is_binary(url), do: ObjectStoreX.from_url!(url, opts)
  defp build!(provider, opts), do: ObjectStoreX.new!(provider, opts)

  @doc """
  The prefix a test's store gets below the root: `MODULE/TEST-RANDOM`, each part reduced to
  letters, digits, `.`, `_` and `-`, and cut to 100 bytes.

  ## Options

  None.
  """
  @spec unique(map()) :: String.t()
  def unique(context) do
    module = context |> Map.get(:module, "test") |> inspect_name() |> segment()
    test = context |> Map.get(:test, "test") |> inspect_name() |> segment()
    random = Base.encode16(:crypto.strong_rand_bytes(5), case: :lower)
    "#{module}/#{test}-#{random}"
  end

  defp inspect_name(name) when is_atom(name), do: name |> Atom.to_string() |> trim_elixir()
  defp inspect_name(name) when is_binary(name), do: name
  defp inspect_name(name), do: inspect(name)

  defp trim_elixir("Elixir." <> name), do: name
  defp trim_elixir(name), do: name

  defp segment(name) do
    clean = name |> String.replace(~r/[^A-Za-z0-9._-]+/, "-") |> String.trim("-")
    name = clean |> binary_part(0, min(byte_size(clean), 100)) |> String.trim("-")

    # "." and ".." are not path segments an object store accepts.
    if name == "" or String.match?(name, ~r/\A\.+\z/), do: "test", else: name
  end

  @doc """
  Deletes every object under the store's prefix and checks that none is left; raises
  `ExUnit.AssertionError` if some are. `isolated_store/2` runs it after each test.

  ## Options

  None.
  """
  @spec cleanup!(Store.t()) :: :ok
  def cleanup!(%Store{} = store), do: cleanup!(store, 3)

  defp cleanup!(store, tries) do
    left =
      with {:ok, metas} <- ObjectStoreX.list(store, timeout: 60_000),
           paths = Enum.map(metas, & &1.location),
           {:ok, _deleted, failed} <- ObjectStoreX.delete_many(store, paths, timeout: 60_000) do
        Enum.map(failed, fn {path, error} -> "#{path} (#{error.reason})" end)
      else
        {:error, %Error{} = error} -> ["listing or deleting failed: #{error.message}"]
      end

    cond do
      left == [] ->
        remove_local_dir(store)

      tries > 1 ->
        cleanup!(store, tries - 1)

      true ->
        raise ExUnit.AssertionError,
          message:
            "could not clean up the test's objects under #{inspect(store.prefix)}: " <>
              Enum.join(left, ", ")
    end
  end

  # Deleting files leaves their directories behind on a local store.
  defp remove_local_dir(%Store{backend: :local, root: root, prefix: prefix})
       when is_binary(root) and is_binary(prefix) do
    File.rm_rf(Path.join(root, prefix))
    :ok
  end

  defp remove_local_dir(_store), do: :ok

  # ---------------------------------------------------------------------------------------------
  # Assertions

  @doc """
  Asserts that the object at `path` exists and matches `expected`: a binary (equal), a
  `Regex` (matches), or a 1-arity function of the bytes that returns a truthy value. Returns
  the object's bytes.

      assert_object(store, "out/report.csv", "date,total\\n2025-01-31,42\\n")
      assert_object(store, "out/report.csv", ~r/^date,total/)
      assert_object(store, "out/data.json", &(byte_size(&1) > 100))

  A binary that differs is reported with both sizes and the first differing byte offset.

  ## Options

  None.
  """
  @spec assert_object(Store.t(), String.t(), binary() | Regex.t() | (binary() -> term())) ::
          binary()
  def assert_object(store, path, expected) do
    data =
      case ObjectStoreX.get(store, path) do
        {:ok, data, _meta} ->
          data

        {:error, %Error{reason: :not_found}} ->
          flunk("expected an object at #{inspect(path)}, found none")

        {:error, %Error{} = e} ->
          flunk("could not read #{inspect(path)}: #{e.reason}: #{e.message}")
      end

    check(path, data, expected)
    data
  end

  defp check(path, data, expected) when is_binary(expected) do
    if data != expected do
      offset = :binary.longest_common_prefix([data, expected])

      flunk("""
      object #{inspect(path)} differs from the expected bytes
        expected size: #{byte_size(expected)} bytes
        actual size:   #{byte_size(data)} bytes
        first difference at byte offset #{offset}
        expected from there: #{excerpt(expected, offset)}
        actual from there:   #{excerpt(data, offset)}\
      """)
    end
  end

  defp check(path, data, %Regex{} = regex) do
    unless Regex.match?(regex, data) do
      flunk(
        "object #{inspect(path)} (#{byte_size(data)} bytes) does not match #{inspect(regex)}\n" <>
          "  starts with: #{excerpt(data, 0)}"
      )
    end
  end

  defp check(path, data, fun) when is_function(fun, 1) do
    unless fun.(data) do
      flunk(
        "object #{inspect(path)} (#{byte_size(data)} bytes) does not satisfy the function given\n" <>
          "  starts with: #{excerpt(data, 0)}"
      )
    end
  end

  defp check(_path, _data, other) do
    flunk(
      "assert_object/3 expects a binary, a Regex or a 1-arity function, got: " <>
        ObjectStoreX.Args.brief(other)
    )
  end

  defp excerpt(data, offset) when offset >= byte_size(data), do: "(end of the object)"

  defp excerpt(data, offset) do
    piece = binary_part(data, offset, min(32, byte_size(data) - offset))
    more = if byte_size(data) - offset > 32, do: "...", else: ""
    inspect(piece) <> more
  end

  @doc """
  Asserts that there is no object at `path`.

  ## Options

  None.
  """
  @spec refute_object(Store.t(), String.t()) :: true
  def refute_object(store, path) do
    case ObjectStoreX.head(store, path) do
      {:error, %Error{reason: :not_found}} ->
        true

      {:ok, meta} ->
        flunk("expected no object at #{inspect(path)}, found one of #{meta.size} bytes")

      {:error, %Error{} = e} ->
        flunk("could not check #{inspect(path)}: #{e.reason}: #{e.message}")
    end
  end

  @doc """
  Asserts that the objects under `prefix` (`""` or `nil` for the whole store) are exactly
  `paths`, in any order, paths written as the store names them (relative to the store's
  `:prefix`, not to `prefix`). Reports the missing and the unexpected ones. Returns the paths
  found, sorted.

      assert_objects(store, "out/", ["out/a.csv", "out/b.csv"])

  ## Options

  None.
  """
  @spec assert_objects(Store.t(), String.t() | nil, [String.t()]) :: [String.t()]
  def assert_objects(store, prefix, paths) when is_list(paths) do
    opts = if prefix in [nil, ""], do: [], else: [prefix: prefix]

    found =
      case ObjectStoreX.list(store, opts) do
        {:ok, metas} ->
          metas |> Enum.map(& &1.location) |> Enum.sort()

        {:error, %Error{} = e} ->
          flunk("could not list #{inspect(prefix)}: #{e.reason}: #{e.message}")
      end

    expected = paths |> Enum.uniq() |> Enum.sort()

    if found != expected do
      missing = expected -- found
      unexpected = found -- expected

      flunk("""
      objects under #{inspect(prefix || "")} are not the ones expected
        missing:    #{inspect(missing, limit: 50, printable_limit: 200)}
        unexpected: #{inspect(unexpected, limit: 50, printable_limit: 200)}\
      """)
    end

    found
  end

  defp flunk(message), do: raise(ExUnit.AssertionError, message: message)
end
