defmodule ObjectStoreX.CLI do
  @moduledoc false
  # Shared by the `mix objectstorex.*` tasks: strict argument parsing, locations (local paths
  # and store URLs), stores built from the environment with a credential check before any
  # request, secret redaction and human-readable figures.

  alias ObjectStoreX.Error

  @mib 1_048_576

  # ---------------------------------------------------------------------------------------------
  # Arguments

  @doc """
  Parses `args` strictly against `switches`; an unknown switch or a value of the wrong type
  raises `Mix.Error` naming the option.
  """
  @spec parse!(String.t(), [String.t()], keyword(), keyword()) :: {keyword(), [String.t()]}
  def parse!(task, args, switches, aliases \\ []) do
    case OptionParser.parse(args, strict: switches, aliases: aliases) do
      {opts, argv, []} ->
        {opts, argv}

      {_opts, _argv, [{switch, value} | _]} ->
        known = Enum.map(switches, fn {key, _} -> "--" <> String.replace("#{key}", "_", "-") end)
        short = Enum.map(aliases, fn {key, _} -> "-#{key}" end)

        if switch in known or switch in short do
          fail!(task, "invalid value #{inspect(value)} for #{switch}")
        else
          fail!(task, "unknown option #{switch}")
        end
    end
  end

  @doc "Raises `Mix.Error` with a message prefixed by the task name and a pointer to its help."
  @spec fail!(String.t(), String.t()) :: no_return()
  def fail!(task, message) do
    Mix.raise("#{task}: #{redact(message)} (see `mix help #{task}`)")
  end

  @doc "Raises `Mix.Error` with the task name and a message, without the help pointer."
  @spec error!(String.t(), String.t()) :: no_return()
  def error!(task, message), do: Mix.raise("#{task}: #{redact(message)}")

  @doc "Parses a location argument, or fails naming what is wrong with it."
  @spec location!(String.t(), String.t()) :: location()
  def location!(task, arg) do
    case location(arg) do
      {:ok, loc} -> loc
      {:error, message} -> fail!(task, message)
    end
  end

  @doc "The single URL argument of a task, as a store location."
  @spec one_location!(String.t(), [String.t()]) :: location()
  def one_location!(task, [arg]), do: as_store(location!(task, arg))

  def one_location!(task, argv),
    do: fail!(task, "expected one URL, got #{length(argv)} argument(s)")

  @doc "Starts the application and opens the location's store, or fails with the reason."
  @spec open!(String.t(), location()) :: ObjectStoreX.Store.t()
  def open!(task, loc) do
    start!()

    case open(loc) do
      {:ok, store} -> store
      {:error, message} -> error!(task, message)
    end
  end

  @doc "Compiles (when needed) and starts the application, so that the NIF is loaded."
  @spec start!() :: :ok
  def start! do
    Mix.Task.run("app.start", [])
    :ok
  end

  @doc """
  A size in bytes: a plain integer, or a number with a unit. `K`, `M`, `G` and `KiB`, `MiB`,
  `GiB` are powers of 1024; `KB`, `MB`, `GB` powers of 1000 (as dd(1) reads them).
  """
  @spec parse_size(String.t()) :: {:ok, non_neg_integer()} | :error
  def parse_size(text) do
    case Regex.run(~r/^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i, text) do
      [_, number, unit] ->
        with {:ok, multiplier} <- unit(String.downcase(unit)) do
          {value, ""} = Float.parse(number)
          bytes = value * multiplier
          if bytes == trunc(bytes), do: {:ok, trunc(bytes)}, else: :error
        end

      nil ->
        :error
    end
  end

  defp unit(u) when u in ["", "b"], do: {:ok, 1}
  defp unit(u) when u in ["k", "kib"], do: {:ok, 1024}
  defp unit(u) when u in ["m", "mib"], do: {:ok, @mib}
  defp unit(u) when u in ["g", "gib"], do: {:ok, 1024 * @mib}
  defp unit("kb"), do: {:ok, 1000}
  defp unit("mb"), do: {:ok, 1_000_000}
  defp unit("gb"), do: {:ok, 1_000_000_000}
  defp unit(_), do: :error

  @doc "Reads a positive integer option, raising a message that names it."
  @spec positive!(String.t(), keyword(), atom()) :: pos_integer() | nil
  def positive!(task, opts, key) do
    case opts[key] do
      nil -> nil
      n when is_integer(n) and n > 0 -> n
      other -> fail!(task, "#{switch(key)} must be a positive integer, got: #{other}")
    end
  end

  @doc "The command-line spelling of an option key: `:part_size` -> `--part-size`."
  @spec switch(atom()) :: String.t()
  def switch(key), do: "--" <> String.replace(Atom.to_string(key), "_", "-")

  # ---------------------------------------------------------------------------------------------
  # Locations

  @schemes ~w(file memory s3 s3a gs az azure abfs abfss http https)
  @bucket_schemes ~w(s3 s3a gs az azure)

  @typedoc """
  Where an argument points: a local file (`:path`) or an object key in a store (`:store`).
  `store_url` is what `ObjectStoreX.from_url/2` builds the store from; `key` is relative to it
  and keeps a trailing "/" when the argument had one (a "directory").
  """
  @type location :: %{
          kind: :path | :store,
          arg: String.t(),
          path: String.t() | nil,
          scheme: String.t() | nil,
          store_url: String.t() | nil,
          authority: String.t() | nil,
          key: String.t()
        }

  @doc "Parses a command-line location: a local path or a store URL."
  @spec location(String.t()) :: {:ok, location()} | {:error, String.t()}
  def location(arg) do
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
      {:error, "URL #{inspect(redact_url(arg))} names no host"}
    end
  end

  defp url_location(arg, scheme, _rest) do
    {:error,
     "unsupported URL scheme #{inspect(scheme <> "://")} in #{inspect(redact_url(arg))}; expected " <>
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
  @spec as_store(location()) :: location()
  def as_store(%{kind: :path} = loc),
    do: %{loc | kind: :store, scheme: "file", store_url: "file:///", authority: "", path: nil}

  def as_store(loc), do: loc

  @doc "The key without trailing slashes: a prefix for listings (`nil` for the root)."
  @spec prefix(location()) :: String.t() | nil
  def prefix(%{key: key}) do
    case String.trim(key, "/") do
      "" -> nil
      prefix -> prefix
    end
  end

  @doc "Whether the location names a directory (a trailing slash, or an empty key)."
  @spec dir?(location()) :: boolean()
  def dir?(%{kind: :path, path: path, key: key}),
    do: String.ends_with?(key, "/") or File.dir?(path)

  def dir?(%{key: key}), do: key == "" or String.ends_with?(key, "/")

  @doc "The same location with `relative` appended to its key (or path)."
  @spec join(location(), String.t()) :: location()
  def join(%{kind: :path, path: path} = loc, relative) do
    path = Path.join(path, relative)
    %{loc | path: path, key: String.trim_leading(path, "/")}
  end

  def join(%{key: key} = loc, relative) do
    base = String.trim_trailing(key, "/")
    %{loc | key: if(base == "", do: relative, else: base <> "/" <> relative)}
  end

  @doc "The location's last path segment."
  @spec basename(location()) :: String.t()
  def basename(%{kind: :path, path: path}), do: Path.basename(path)

  def basename(%{key: key}),
    do: key |> String.trim_trailing("/") |> String.split("/") |> List.last()

  @doc "How a location is shown to the user: the URL or path, without any user:password@."
  @spec display(location()) :: String.t()
  def display(%{kind: :path, path: path}), do: path
  def display(%{scheme: "memory", key: key}), do: "memory://" <> key
  def display(%{scheme: "file", key: key}), do: "file:///" <> key

  def display(%{scheme: scheme, authority: authority, key: key}),
    do: "#{scheme}://#{authority}/#{key}"

  # ---------------------------------------------------------------------------------------------
  # Stores

  @doc """
  The store a location lives in, built from its URL and the provider's standard environment
  variables. Missing credentials are reported before any request is made: without them,
  object_store would ask the cloud's instance-metadata endpoint.
  """
  @spec open(location()) :: {:ok, ObjectStoreX.Store.t()} | {:error, String.t()}
  def open(%{kind: :path} = loc), do: open(as_store(loc))
  def open(%{scheme: "memory"}), do: {:ok, memory_store()}

  def open(%{scheme: scheme, store_url: url} = loc) do
    # An http:// URL asks for plain HTTP; the HTTP store has no environment variable to say so.
    opts = if scheme == "http", do: [allow_http: true], else: []

    with :ok <- check_credentials(provider(scheme), loc) do
      case ObjectStoreX.from_url(url, opts) do
        {:ok, store} -> {:ok, store}
        {:error, %Error{message: message}} -> {:error, "#{display(loc)}: #{message}"}
      end
    end
  end

  # memory:// is one store for the whole run (e.g. `mix do objectstorex.cp a memory://x,
  # objectstorex.cp memory://x b`), not a new empty one per argument.
  defp memory_store do
    case :persistent_term.get({__MODULE__, :memory}, nil) do
      nil ->
        store = ObjectStoreX.new!(:memory)
        :persistent_term.put({__MODULE__, :memory}, store)
        store

      store ->
        store
    end
  end

  defp provider(scheme) when scheme in ["s3", "s3a"], do: :s3
  defp provider("gs"), do: :gcs
  defp provider(scheme) when scheme in ["az", "azure", "abfs", "abfss"], do: :azure
  defp provider(_), do: :other

  @allow_metadata "OBJECTSTOREX_ALLOW_INSTANCE_METADATA"

  @doc false
  @spec check_credentials(atom(), location()) :: :ok | {:error, String.t()}
  def check_credentials(provider, loc) do
    cond do
      provider == :other -> :ok
      truthy?(@allow_metadata) -> :ok
      credentials?(provider, loc) -> :ok
      true -> {:error, "#{display(loc)}: #{missing_credentials(provider, loc)}"}
    end
  end

  defp credentials?(:s3, _loc) do
    any?(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) or
      all?(["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"]) or
      any?(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]) or
      truthy?("AWS_SKIP_SIGNATURE")
  end

  defp credentials?(:gcs, _loc) do
    any?([
      "GOOGLE_SERVICE_ACCOUNT",
      "GOOGLE_SERVICE_ACCOUNT_PATH",
      "SERVICE_ACCOUNT",
      "GOOGLE_SERVICE_ACCOUNT_KEY",
      "GOOGLE_APPLICATION_CREDENTIALS"
    ]) or truthy?("GOOGLE_SKIP_SIGNATURE") or gcloud_default_credentials?()
  end

  defp credentials?(:azure, loc) do
    truthy?("AZURE_STORAGE_USE_EMULATOR") or
      (azure_account?(loc) and
         (any?([
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_TOKEN"
          ]) or
            (any?(["AZURE_CLIENT_ID", "AZURE_STORAGE_CLIENT_ID"]) and
               any?(["AZURE_TENANT_ID", "AZURE_STORAGE_TENANT_ID", "AZURE_AUTHORITY_ID"]) and
               any?([
                 "AZURE_CLIENT_SECRET",
                 "AZURE_STORAGE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE"
               ])) or
            truthy?("AZURE_USE_AZURE_CLI") or truthy?("AZURE_SKIP_SIGNATURE")))
  end

  defp azure_account?(%{scheme: scheme}) when scheme in ["abfs", "abfss"], do: true
  defp azure_account?(_loc), do: any?(["AZURE_STORAGE_ACCOUNT_NAME"])

  defp gcloud_default_credentials? do
    case System.get_env("HOME") do
      nil ->
        false

      home ->
        File.regular?(Path.join(home, ".config/gcloud/application_default_credentials.json"))
    end
  end

  defp missing_credentials(:s3, _loc) do
    "no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY " <>
      "(and AWS_SESSION_TOKEN for temporary ones), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, " <>
      "or AWS_SKIP_SIGNATURE=true for a public bucket; " <> metadata_hint()
  end

  defp missing_credentials(:gcs, _loc) do
    "no Google Cloud credentials in the environment: set GOOGLE_SERVICE_ACCOUNT (a key file), " <>
      "GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_APPLICATION_CREDENTIALS, or " <>
      "GOOGLE_SKIP_SIGNATURE=true for a public bucket; " <> metadata_hint()
  end

  defp missing_credentials(:azure, loc) do
    if azure_account?(loc) do
      "no Azure credentials in the environment: set AZURE_STORAGE_ACCOUNT_KEY, " <>
        "AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_TOKEN, or AZURE_CLIENT_ID, AZURE_TENANT_ID " <>
        "and AZURE_CLIENT_SECRET (or AZURE_STORAGE_USE_EMULATOR=true for Azurite); " <>
        metadata_hint()
    else
      "no Azure storage account in the environment: set AZURE_STORAGE_ACCOUNT_NAME and a " <>
        "credential (AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN, ...), or " <>
        "AZURE_STORAGE_USE_EMULATOR=true for Azurite"
    end
  end

  defp metadata_hint do
    "on a cloud VM, #{@allow_metadata}=true lets the credentials come from its instance " <>
      "metadata service"
  end

  defp any?(vars), do: Enum.any?(vars, &set?/1)
  defp all?(vars), do: Enum.all?(vars, &set?/1)
  defp set?(var), do: (System.get_env(var) || "") != ""

  defp truthy?(var),
    do: String.downcase(System.get_env(var) || "") in ["true", "1", "yes", "on"]

  # ---------------------------------------------------------------------------------------------
  # Secrets

  # Environment variables whose values are secrets. Their values are removed from every
  # message the tasks print, whatever produced the message.
  @secret_vars ~r/(SECRET|PASSWORD|TOKEN|SAS_KEY|ACCOUNT_KEY|ACCESS_KEY|MASTER_KEY|SERVICE_ACCOUNT_KEY|CUSTOMER_KEY)/

  @doc "Removes secret environment values and URL passwords from `text`."
  @spec redact(String.t()) :: String.t()
  def redact(text) do
    secrets =
      for {name, value} <- System.get_env(),
          String.match?(name, ~r/^(AWS|AZURE|GOOGLE)_/),
          not String.ends_with?(name, "_ID"),
          Regex.match?(@secret_vars, name),
          # A value this short is no secret worth the name, and replacing it would garble
          # ordinary words in the message.
          byte_size(value) >= 8,
          do: value

    secrets
    |> Enum.sort_by(&(-byte_size(&1)))
    |> Enum.reduce(redact_url(text), &String.replace(&2, &1, "[REDACTED]"))
  end

  defp redact_url(text), do: Regex.replace(~r{(://)[^/@\s]*:[^/@\s]*@}, text, "\\1[REDACTED]@")

  # ---------------------------------------------------------------------------------------------
  # Output

  @doc "Whether standard error is a terminal (where a progress bar can be redrawn in place)."
  @spec tty?() :: boolean()
  def tty? do
    case :io.columns(:standard_error) do
      {:ok, _} ->
        true

      # OTP before 26 answers :enotsup without a shell even on a terminal: ask test(1), which
      # inherits the VM's standard error.
      _ ->
        case System.find_executable("sh") do
          nil -> false
          sh -> match?({_, 0}, System.cmd(sh, ["-c", "test -t 2"]))
        end
    end
  end

  @doc "Bytes in binary units: `268435456` -> `\"256.0 MiB\"`."
  @spec bytes(non_neg_integer()) :: String.t()
  def bytes(n) when n < 1024, do: "#{n} B"

  def bytes(n), do: scale(n / 1024, ~w(KiB MiB GiB TiB))

  defp scale(value, [unit]), do: format(value, unit)
  defp scale(value, [unit | _]) when value < 1024, do: format(value, unit)
  defp scale(value, [_ | units]), do: scale(value / 1024, units)

  defp format(value, unit), do: "#{:erlang.float_to_binary(value, decimals: 1)} #{unit}"

  @doc "A transfer rate from bytes and microseconds: `\"180.3 MiB/s\"`."
  @spec rate(non_neg_integer(), non_neg_integer()) :: String.t()
  def rate(bytes, micros), do: bytes(trunc(bytes * 1_000_000 / max(micros, 1))) <> "/s"

  @doc "Seconds with two decimals: `\"1.42 s\"`."
  @spec seconds(non_neg_integer()) :: String.t()
  def seconds(micros), do: :erlang.float_to_binary(micros / 1_000_000, decimals: 2) <> " s"

  @doc """
  Runs `fun` with standard output passing bytes unchanged, and restores its encoding after:
  a unicode device would re-encode every byte >= 128 of binary data as UTF-8.
  """
  @spec binary_stdout((() -> result)) :: result when result: term()
  def binary_stdout(fun) do
    encoding = Keyword.get(:io.getopts(:standard_io), :encoding, :latin1)
    :ok = :io.setopts(:standard_io, encoding: :latin1)

    try do
      fun.()
    after
      :io.setopts(:standard_io, encoding: encoding)
    end
  end
end
