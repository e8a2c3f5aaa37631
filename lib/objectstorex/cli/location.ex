defmodule ObjectStoreX.CLI.Location do
  @moduledoc false
  # Where a `mix objectstorex.*` argument points: a local path or an object key in a store
  # named by a URL, and what the tasks do with one (join, display, ...).

  alias ObjectStoreX.CLI.Credentials

  @schemes ~w(file memory s3 s3a gs az azure abfs abfss http https)
  @bucket_schemes ~w(s3 s3a gs az azure)

  @typedoc """
  Where an argument points: a local file (`:path`) or an object key in a store (`:store`).
  `store_url` is what `ObjectStoreX.from_url/2` builds the store from; `key` is relative to it
  and keeps a trailing "/" when the argument had one (a "directory").
  """
  @type t :: %{
          kind: :path | :store,
          arg: String.t(),
          path: String.t() | nil,
          scheme: String.t() | nil,
          store_url: String.t() | nil,
          authority: String.t() | nil,
          key: String.t()
        }

  @doc "Parses a command-line location: a local path or a store URL."
  @spec parse(String.t()) :: {:ok, t()} | {:error, String.t()}
  def parse(arg) do
    case Regex.run(~r/^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s, arg) do
      [_, scheme, rest] -> url_location(arg, String.downcase(scheme), rest)
      nil when arg == "" -> {:error, "empty location"}
      nil -> {:ok, path_location(arg)}
    end
  end

  defp path_location(arg) do
    path = Path.expand(arg)
    # A trailing "/" says "directory" (as for URLs); Path.expand drops it.
    key = String.trim_leading(path, "/") <> if(String.ends_with?(arg, "/"), do: "/", else: "")
    %{kind: :path, arg: arg, path: path, scheme: nil, store_url: nil, authority: nil, key: key}
  end

  defp url_location(arg, "file", rest) do
    case rest do
      "/" <> _ -> file_location(arg, URI.decode(rest))
      "localhost/" <> path -> file_location(arg, URI.decode("/" <> path))
      _ -> {:error, "file URL #{inspect(arg)} must be absolute: file:///DIR/FILE"}
    end
  end

  defp url_location(arg, "memory", rest) do
    {:ok, store(arg, "memory", "memory://", "", String.trim_leading(rest, "/"))}
  end

  defp url_location(arg, scheme, rest) when scheme in @bucket_schemes do
    case String.split(rest, "/", parts: 2) do
      [bucket | _] when bucket == "" ->
        {:error, "URL #{inspect(arg)} names no #{bucket_word(scheme)}: #{scheme}://NAME/KEY"}

      [bucket] ->
        {:ok, store(arg, scheme, "#{scheme}://#{bucket}", bucket, "")}

      [bucket, key] ->
        {:ok, store(arg, scheme, "#{scheme}://#{bucket}", bucket, key)}
    end
  end

  defp url_location(arg, scheme, rest) when scheme in ["abfs", "abfss"] do
    case String.split(rest, "/", parts: 2) do
      [authority, key] when authority != "" ->
        {:ok, store(arg, scheme, "#{scheme}://#{authority}", authority, key)}

      [authority] when authority != "" ->
        {:ok, store(arg, scheme, "#{scheme}://#{authority}", authority, "")}

      _ ->
        {:error,
         "URL #{inspect(arg)} names no container: #{scheme}://CONTAINER@ACCOUNT.dfs.core.windows.net/KEY"}
    end
  end

  defp url_location(arg, scheme, _rest) when scheme in ["http", "https"] do
    uri = URI.parse(arg)

    if is_binary(uri.host) and uri.host != "" do
      base = URI.to_string(%URI{uri | path: nil, query: nil, fragment: nil})
      key = uri.path |> to_string() |> String.trim_leading("/") |> URI.decode()
      {:ok, store(arg, scheme, base, host_port(uri), key)}
    else
      {:error, "URL #{inspect(Credentials.redact_url(arg))} names no host"}
    end
  end

  defp url_location(arg, scheme, _rest) do
    {:error,
     "unsupported URL scheme #{inspect(scheme <> "://")} in #{inspect(Credentials.redact_url(arg))}; expected " <>
       "a local path or one of #{Enum.map_join(@schemes, ", ", &(&1 <> "://"))}"}
  end

  defp file_location(arg, path) do
    {:ok, store(arg, "file", "file:///", "", String.trim_leading(path, "/"))}
  end

  defp store(arg, scheme, store_url, authority, key) do
    %{
      kind: :store,
      arg: arg,
      path: nil,
      scheme: scheme,
      store_url: store_url,
      authority: authority,
      key: key
    }
  end

  defp host_port(%URI{host: host, port: port, scheme: scheme}) do
    if port == URI.default_port(scheme), do: host, else: "#{host}:#{port}"
  end

  defp bucket_word(scheme) when scheme in ["az", "azure"], do: "container"
  defp bucket_word(_), do: "bucket"

  @doc "A local path as an object in the filesystem store rooted at `/`."
  @spec as_store(t()) :: t()
  def as_store(%{kind: :path} = loc),
    do: %{loc | kind: :store, scheme: "file", store_url: "file:///", authority: "", path: nil}

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
