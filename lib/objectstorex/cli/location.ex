defmodule ObjectStoreX.CLI.Location do
  @moduledoc false
  # Where a `mix objectstorex.*` argument points: a local path or an object key in a store
  # named by a URL, and what the tasks do with one (join, display, ...).

  @typedoc """
  Where an argument points: a local file (`:path`) or an object key in a store (`:store`).
  `provider` and `store_opts` are what the store is built from (`ObjectStoreX.Store.parse_url/1`
  reads them from the URL); `key` is relative to it and keeps a trailing "/" when the argument
  had one (a "directory"). `scheme` and `authority` are for display.
  """
  @type t :: %{
          kind: :path | :store,
          arg: String.t(),
          path: String.t() | nil,
          scheme: String.t() | nil,
          provider: ObjectStoreX.Store.backend() | nil,
          store_opts: keyword(),
          authority: String.t() | nil,
          key: String.t()
        }

  @doc "Parses a command-line location: a local path or a store URL."
  @spec parse(String.t()) :: {:ok, t()} | {:error, String.t()}
  def parse(arg) do
    cond do
      arg == "" -> {:error, "empty location"}
      Regex.match?(~r/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//, arg) -> url_location(arg)
      true -> {:ok, path_location(arg)}
    end
  end

  defp path_location(arg) do
    path = Path.expand(arg)
    # A trailing "/" says "directory" (as for URLs); Path.expand drops it.
    key = String.trim_leading(path, "/") <> if(String.ends_with?(arg, "/"), do: "/", else: "")

    %{
      kind: :path,
      arg: arg,
      path: path,
      scheme: nil,
      provider: nil,
      store_opts: [],
      authority: nil,
      key: key
    }
  end

  defp url_location(arg) do
    uri = URI.parse(arg)

    # The store would take file://HOST/DIR as /DIR; a task refuses to guess.
    if uri.scheme == "file" and uri.host not in [nil, "", "localhost"] do
      {:error, "file URL #{inspect(arg)} must be absolute: file:///DIR/FILE"}
    else
      case ObjectStoreX.Store.parse_url(arg) do
        {:ok, provider, opts, path} ->
          {:ok,
           %{
             kind: :store,
             arg: arg,
             path: nil,
             scheme: uri.scheme,
             provider: provider,
             store_opts: opts,
             authority: authority(uri),
             key: String.trim_leading(path, "/") <> literal_rest(uri)
           }}

        {:error, error} ->
          {:error, error.message}
      end
    end
  end

  # A "?" or "#" in an object key is part of the key, not a query or fragment: as written.
  defp literal_rest(%URI{scheme: scheme}) when scheme in ["http", "https"], do: ""

  defp literal_rest(%URI{query: query, fragment: fragment}) do
    if(query, do: "?" <> query, else: "") <> if(fragment, do: "#" <> fragment, else: "")
  end

  # Never the user information of an http(s):// URL, which may hold a password.
  defp authority(%URI{scheme: scheme} = uri) when scheme in ["http", "https"] do
    if uri.port == URI.default_port(scheme), do: uri.host, else: "#{uri.host}:#{uri.port}"
  end

  defp authority(%URI{scheme: scheme} = uri) when scheme in ["abfs", "abfss"],
    do: "#{uri.userinfo}@#{uri.host}"

  defp authority(%URI{scheme: scheme}) when scheme in ["file", "memory"], do: ""
  defp authority(%URI{host: host}), do: host

  @doc "A local path as an object in the filesystem store rooted at `/`."
  @spec as_store(t()) :: t()
  def as_store(%{kind: :path} = loc),
    do: %{
      loc
      | kind: :store,
        scheme: "file",
        provider: :local,
        store_opts: [root: "/"],
        authority: "",
        path: nil
    }

  def as_store(loc), do: loc

  @doc "The key without trailing slashes: a prefix for listings (`nil` for the root)."
  @spec prefix(t()) :: String.t() | nil
  def prefix(%{key: key}) do
    case String.trim(key, "/") do
      "" -> nil
      prefix -> prefix
    end
  end

  @doc "Whether the location names a directory (a trailing slash, or an empty key)."
  @spec dir?(t()) :: boolean()
  def dir?(%{kind: :path, path: path, key: key}),
    do: String.ends_with?(key, "/") or File.dir?(path)

  def dir?(%{key: key}), do: key == "" or String.ends_with?(key, "/")

  @doc "The same location with `relative` appended to its key (or path)."
  @spec join(t(), String.t()) :: t()
  def join(%{kind: :path, path: path} = loc, relative) do
    path = Path.join(path, relative)
    %{loc | path: path, key: String.trim_leading(path, "/")}
  end

  def join(%{key: key} = loc, relative) do
    base = String.trim_trailing(key, "/")
    %{loc | key: if(base == "", do: relative, else: base <> "/" <> relative)}
  end

  @doc "The location's last path segment."
  @spec basename(t()) :: String.t()
  def basename(%{kind: :path, path: path}), do: Path.basename(path)

  def basename(%{key: key}),
    do: key |> String.trim_trailing("/") |> String.split("/") |> List.last()

  @doc "How a location is shown to the user: the URL or path, without any user:password@."
  @spec display(t()) :: String.t()
  def display(%{kind: :path, path: path}), do: path
  def display(%{scheme: "memory", key: key}), do: "memory://" <> key
  def display(%{scheme: "file", key: key}), do: "file:///" <> key

  def display(%{scheme: scheme, authority: authority, key: key}),
    do: "#{scheme}://#{authority}/#{key}"
end
