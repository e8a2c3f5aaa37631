defmodule ObjectStoreX.Store do
  @moduledoc """
  A configured object store, built by `ObjectStoreX.new/2` or `ObjectStoreX.from_url/2`.

  The struct carries what identifies the store (`:backend`, `:bucket`, `:root`, `:prefix`), a
  reference to the native store and, for rebuilding the store on another node (see
  `ObjectStoreX.Sync`), its constructor arguments sealed in a closure: credentials never appear
  in `inspect/2` (with or without `structs: false`) nor in Erlang's `~p`. They travel only when
  the struct itself is sent, e.g. over a distribution connection. A store is safe to share
  between processes and to keep for the life of the application.

  `:fault` is set on a store built by `ObjectStoreX.Fault.wrap/2`: the record of its calls.
  """

  alias ObjectStoreX.{Args, Error, Native}

  @enforce_keys [:backend, :resource]
  defstruct [:backend, :bucket, :root, :prefix, :resource, :spec, :fault]

  @type backend :: :s3 | :gcs | :azure | :http | :local | :memory
  @type t :: %__MODULE__{
          backend: backend(),
          bucket: String.t() | nil,
          root: String.t() | nil,
          prefix: String.t() | nil,
          resource: reference(),
          spec: (() -> {backend(), keyword()}) | nil,
          fault: reference() | nil
        }

  @network_opts [
    :timeout,
    :connect_timeout,
    :read_timeout,
    :pool_idle_timeout,
    :proxy_url,
    :allow_http,
    :retry,
    :from_env
  ]

  # Elixir option => object_store configuration key.
  @provider_keys %{
    s3: %{
      bucket: "aws_bucket",
      region: "aws_region",
      endpoint: "aws_endpoint",
      access_key_id: "aws_access_key_id",
      secret_access_key: "aws_secret_access_key",
      session_token: "aws_session_token",
      virtual_hosted_style_request: "aws_virtual_hosted_style_request",
      skip_signature: "aws_skip_signature",
      conditional_put: "aws_conditional_put",
      copy_if_not_exists: "aws_copy_if_not_exists",
      checksum_algorithm: "aws_checksum_algorithm"
    },
    gcs: %{
      bucket: "google_bucket",
      service_account_path: "google_service_account",
      service_account_key: "google_service_account_key",
      application_credentials: "google_application_credentials"
    },
    azure: %{
      account: "azure_storage_account_name",
      container: "azure_container_name",
      access_key: "azure_storage_account_key",
      sas_token: "azure_storage_sas_key",
      bearer_token: "azure_storage_token",
      client_id: "azure_storage_client_id",
      client_secret: "azure_storage_client_secret",
      tenant_id: "azure_storage_tenant_id",
      use_emulator: "azure_storage_use_emulator",
      endpoint: "azure_storage_endpoint"
    },
    http: %{}
  }

  @client_keys %{
    timeout: "timeout",
    connect_timeout: "connect_timeout",
    read_timeout: "read_timeout",
    pool_idle_timeout: "pool_idle_timeout",
    proxy_url: "proxy_url",
    allow_http: "allow_http"
  }

  @retry_defaults [
    max_retries: 10,
    retry_timeout: 180_000,
    init_backoff: 100,
    max_backoff: 15_000,
    base: 2.0
  ]

  @providers [:s3, :gcs, :azure, :http, :local, :memory]

  @doc false
  @spec allowed_options(backend()) :: [atom()]
  def allowed_options(:memory), do: [:prefix]
  def allowed_options(:local), do: [:prefix, :root]
  def allowed_options(:http), do: [:prefix, :url | @network_opts]

  def allowed_options(provider),
    do: [:prefix | Map.keys(@provider_keys[provider])] ++ @network_opts

  @doc false
  @spec new(atom(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def new(provider, opts) when provider in @providers do
    with {:ok, opts} <- keyword(opts),
         {:ok, opts} <- Args.opts(opts, allowed_options(provider)),
         {:ok, config} <- native_config(provider, opts),
         {:ok, resource} <- open(provider, config) do
      {:ok,
       %__MODULE__{
         backend: provider,
         bucket: opts[:bucket] || opts[:container],
         root: root(provider, opts),
         prefix: normalize_prefix(opts[:prefix]),
         resource: resource,
         spec: seal(provider, opts)
       }}
    end
  end

  def new(provider, _opts),
    do:
      Error.invalid(
        "unknown provider #{Args.brief(provider)}; expected one of #{Enum.map_join(@providers, ", ", &inspect/1)}"
      )

  # The validated arguments, to build the same store elsewhere. A closure: inspect/2 and ~p
  # show a function, never the values it captured. A relative :root is made absolute here, so
  # that another node's working directory does not change its meaning.
  defp seal(provider, opts) do
    opts = if opts[:root], do: %{opts | root: Path.expand(opts[:root])}, else: opts
    args = {provider, Enum.sort(opts)}
    fn -> args end
  end

  @doc false
  # The store for this VM: `store` itself when its native store lives here, else one built from
  # its sealed arguments (a store received from another node). A :memory store cannot be
  # rebuilt: another one would be empty.
  @spec local(t()) :: {:ok, t()} | {:error, Error.t()}
  def local(%__MODULE__{resource: resource} = store) when is_reference(resource) do
    cond do
      Native.store_valid(resource) ->
        {:ok, store}

      store.backend == :memory ->
        Error.invalid(
          "a :memory store lives in the VM that made it (node #{inspect(node(resource))}) " <>
            "and cannot be rebuilt on node #{inspect(node())}"
        )

      # Rebuilt from its arguments it would lose its rules and its record of calls.
      store.fault != nil ->
        Error.invalid(
          "a store wrapped by ObjectStoreX.Fault lives in the VM that made it and cannot be " <>
            "rebuilt on node #{inspect(node())}"
        )

      is_function(store.spec, 0) ->
        {provider, opts} = store.spec.()
        new(provider, opts)

      true ->
        Error.invalid("the store carries no arguments to rebuild it on #{inspect(node())}")
    end
  end

  def local(other), do: Args.store(other)

  @doc false
  # What makes two stores the same place, without credentials: for :memory the native store
  # itself, else the backend and the options that address it.
  @spec identity(t()) :: term()
  def identity(%__MODULE__{backend: :memory, resource: resource}), do: {:memory, resource}

  def identity(%__MODULE__{backend: backend, spec: spec} = store) when is_function(spec, 0) do
    {_provider, opts} = spec.()
    address = Keyword.take(opts, [:bucket, :container, :account, :endpoint, :root, :url])
    {backend, Enum.sort(address), store.prefix}
  end

  def identity(%__MODULE__{} = store), do: {store.backend, store.bucket, store.root, store.prefix}

  # Args.keyword would quote a malformed list, and store options carry credentials.
  defp keyword(opts) do
    if is_list(opts) and Keyword.keyword?(opts),
      do: Args.keyword(opts),
      else: Error.invalid("store options must be a keyword list, got #{kind(opts)}")
  end

  # What a value is, for messages that must not show it.
  defp kind(value) when is_list(value), do: "a list"
  defp kind(value) when is_map(value), do: "a map"
  defp kind(""), do: "an empty string"
  defp kind(value) when is_binary(value), do: "a string"
  defp kind(value) when is_atom(value), do: "an atom"
  defp kind(value) when is_number(value), do: "a number"
  defp kind(_value), do: "another term"

  # Values of options named like credentials (and URLs, which may carry a user and password)
  # are never quoted in messages, only described.
  defp shown(key, value) do
    name = Atom.to_string(key)

    if String.contains?(name, ["secret", "token", "key", "password", "credential", "url"]),
      do: kind(value),
      else: Args.brief(value)
  end

  # The URL without its user information and query (which may hold a SAS token), for messages
  # and inspect/2.
  # Done on the text, so that a URL that URI cannot split still loses them.
  defp redact_url(url) do
    url
    |> String.replace(~r{^([^/?#]*://)?[^/?#]*@}, "\\1")
    |> String.replace(~r{\?[^#]*}, "")
  end

  defp open(provider, config),
    do: ObjectStoreX.Call.await(&Native.store_new(&1, provider, config), :infinity)

  defp root(:local, opts), do: opts[:root] && Path.expand(opts[:root])
  defp root(:http, opts), do: opts[:url] && redact_url(opts[:url])
  defp root(:azure, opts), do: opts[:account]
  defp root(_, _), do: nil

  defp normalize_prefix(nil), do: nil

  defp normalize_prefix(prefix) do
    case String.trim(prefix, "/") do
      "" -> nil
      p -> p
    end
  end

  defp native_config(provider, opts) do
    with {:ok, prefix} <- Args.optional_path(":prefix", opts[:prefix]),
         {:ok, retry} <- retry(opts[:retry]),
         {:ok, from_env} <- Args.boolean(":from_env", Map.get(opts, :from_env, true)),
         {:ok, pairs} <- pairs(provider, opts),
         :ok <- check_required(provider, opts) do
      {:ok,
       %{
         pairs: pairs,
         retry: retry,
         prefix: normalize_prefix(prefix),
         root: opts[:root] && Path.expand(opts[:root]),
         url: opts[:url],
         from_env: from_env,
         env: if(from_env, do: provider_env(provider), else: [])
       }}
    end
  end

  # The provider's environment variables as this VM sees them, System.put_env/2 included: the
  # native side takes these rather than reading the OS process's environment, which the VM
  # does not update. The names its builders read (object_store's `from_env`).
  @env_names %{
    s3: {"AWS_", []},
    azure: {"AZURE_", ["IDENTITY_ENDPOINT"]},
    gcs: {"GOOGLE_", ["SERVICE_ACCOUNT"]}
  }

  defp provider_env(provider) when is_map_key(@env_names, provider) do
    {prefix, names} = @env_names[provider]

    for {name, value} <- System.get_env(),
        String.starts_with?(name, prefix) or name in names,
        String.valid?(name) and String.valid?(value),
        do: {name, value}
  end

  defp provider_env(_provider), do: []

  defp check_required(:local, opts), do: require_string(opts, :root)
  defp check_required(:http, opts), do: require_string(opts, :url)

  defp check_required(:azure, %{use_emulator: true, endpoint: _}) do
    Error.invalid(
      ":endpoint cannot be combined with use_emulator: true; the emulator address comes from " <>
        "AZURITE_BLOB_STORAGE_URL (default http://127.0.0.1:10000)"
    )
  end

  defp check_required(_provider, _opts), do: :ok

  defp require_string(opts, key) do
    case opts[key] do
      value when is_binary(value) and value != "" ->
        with {:ok, _} <- Args.utf8("option #{inspect(key)}", value), do: :ok

      nil ->
        Error.invalid("option #{inspect(key)} is required")

      other ->
        Error.invalid(
          "option #{inspect(key)} must be a non-empty string, got: #{shown(key, other)}"
        )
    end
  end

  # object_store's 30 s whole-request default would cut any longer transfer; a stall timeout
  # catches a dead connection instead, and the whole-request bound stays as a backstop.
  @network_defaults %{timeout: 300_000, read_timeout: 30_000}

  defp pairs(provider, opts) do
    keys = Map.merge(Map.get(@provider_keys, provider, %{}), @client_keys)

    opts =
      if provider in [:s3, :gcs, :azure, :http],
        do: Map.merge(@network_defaults, opts),
        else: opts

    opts
    |> Enum.filter(fn {key, _} -> Map.has_key?(keys, key) end)
    |> Enum.sort()
    |> Args.map_all(fn {key, value} ->
      with {:ok, string} <- config_value(key, value), do: {:ok, {keys[key], string}}
    end)
  end

  @duration_opts [:timeout, :connect_timeout, :read_timeout, :pool_idle_timeout]
  @boolean_opts [:allow_http, :virtual_hosted_style_request, :skip_signature, :use_emulator]

  defp config_value(key, ms) when key in @duration_opts do
    if is_integer(ms) and ms > 0 and ms <= Args.max_timeout(),
      do: {:ok, "#{ms}ms"},
      else:
        Error.invalid(
          "option #{inspect(key)} must be a positive integer of milliseconds, at most #{Args.max_timeout()}, got: #{Args.brief(ms)}"
        )
  end

  defp config_value(key, value) when key in @boolean_opts do
    with {:ok, bool} <- Args.boolean("option #{inspect(key)}", value), do: {:ok, to_string(bool)}
  end

  defp config_value(key, value) when is_binary(value),
    do: Args.utf8("option #{inspect(key)}", value)

  defp config_value(key, value),
    do: Error.invalid("option #{inspect(key)} must be a string, got: #{shown(key, value)}")

  defp retry(nil), do: {:ok, nil}

  defp retry(opts) do
    with {:ok, r} <- Args.opts(opts, Keyword.keys(@retry_defaults), @retry_defaults),
         :ok <- retry_integer(r, :max_retries, 0),
         :ok <- retry_integer(r, :retry_timeout, 0),
         :ok <- retry_integer(r, :init_backoff, 1),
         :ok <- retry_integer(r, :max_backoff, 1),
         :ok <- backoff_order(r),
         :ok <- backoff_base(r.base) do
      {:ok,
       %{
         max_retries: r.max_retries,
         retry_timeout_ms: r.retry_timeout,
         init_backoff_ms: r.init_backoff,
         max_backoff_ms: r.max_backoff,
         base: r.base * 1.0
       }}
    else
      {:error, %Error{message: message} = e} ->
        {:error, %Error{e | message: ":retry " <> message}}
    end
  end

  defp retry_integer(map, key, min) do
    value = map[key]

    if is_integer(value) and value >= min and value <= Args.max_timeout(),
      do: :ok,
      else:
        Error.invalid(
          "#{inspect(key)} must be an integer from #{min} to #{Args.max_timeout()}, got: #{Args.brief(value)}"
        )
  end

  # object_store draws each backoff from init_backoff..(previous * base): that range is empty,
  # and the draw panics on every retry, unless base > 1 and max_backoff >= init_backoff.
  defp backoff_order(%{init_backoff: init, max_backoff: max}) when max >= init, do: :ok

  defp backoff_order(%{init_backoff: init, max_backoff: max}),
    do:
      Error.invalid(
        ":max_backoff must be at least :init_backoff (#{init} ms), got: #{Args.brief(max)}"
      )

  # The upper bound keeps every backoff finite (and an integer convertible to a float).
  @max_base 1_000

  defp backoff_base(base) when is_number(base) and base > 1.0 and base <= @max_base, do: :ok

  defp backoff_base(base),
    do:
      Error.invalid(
        ":base must be a number greater than 1.0 and at most #{@max_base}, got: #{Args.brief(base)}"
      )

  @doc false
  @spec from_url(String.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def from_url(url, opts) when is_binary(url) do
    # Options left nil do not override what the URL says.
    with {:ok, url} <- Args.utf8("url", url),
         {:ok, opts} <- keyword(opts),
         {:ok, provider, parsed, path} <- parse_url(url) do
      new(provider, Keyword.merge(url_options(provider, parsed, path, url), opts))
    end
  end

  def from_url(other, _opts), do: Error.invalid("url must be a string, got #{kind(other)}")

  # The URL's path is the store's root (file://), part of the server's URL (http://), or the
  # prefix that scopes the store.
  defp url_options(:local, _parsed, path, _url), do: [root: path]
  defp url_options(:http, _parsed, _path, url), do: [url: url]
  defp url_options(:memory, parsed, _path, _url), do: parsed

  defp url_options(_provider, parsed, path, _url) do
    case String.trim(path, "/") do
      "" -> parsed
      prefix -> [{:prefix, prefix} | parsed]
    end
  end

  @url_schemes ["memory://", "file://", "s3://", "gs://", "az://", "abfs://", "http(s)://"]

  @doc false
  # The one reading of a store URL, shared by from_url/2 and the mix tasks: the provider, the
  # options that name the store (bucket; container and account; the HTTP server's URL
  # without its path; "/" for file://) and the path below them, as the URL writes it from its
  # first "/" (decoded for file:// and http(s)://, as those stores take decoded paths). The
  # query and fragment are not part of it.
  @spec parse_url(String.t()) :: {:ok, backend(), keyword(), String.t()} | {:error, Error.t()}
  def parse_url(url) do
    uri = URI.parse(url)
    path = uri.path || ""

    case uri.scheme do
      "memory" ->
        {:ok, :memory, [], "/" <> String.trim_leading(to_string(uri.host) <> path, "/")}

      "file" ->
        if path == "",
          do: Error.invalid("file URL #{inspect(redact_url(url))} has no path"),
          else: {:ok, :local, [root: "/"], decode(path)}

      scheme when scheme in ["s3", "s3a"] ->
        bucket_url(:s3, :bucket, url, uri)

      "gs" ->
        bucket_url(:gcs, :bucket, url, uri)

      scheme when scheme in ["az", "azure"] ->
        bucket_url(:azure, :container, url, uri)

      scheme when scheme in ["abfs", "abfss"] ->
        account = uri.host |> to_string() |> String.split(".") |> hd()

        case String.split(uri.userinfo || "", "@") do
          [container] when container != "" and account != "" ->
            {:ok, :azure, [container: container, account: account], path}

          _ ->
            Error.invalid(
              "an abfs URL must be abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH, got: #{inspect(redact_url(url))}"
            )
        end

      scheme when scheme in ["http", "https"] ->
        if is_binary(uri.host) and uri.host != "" do
          server = URI.to_string(%URI{uri | path: nil, query: nil, fragment: nil})
          {:ok, :http, [url: server], decode(path)}
        else
          Error.invalid("URL #{inspect(redact_url(url))} names no host")
        end

      nil ->
        Error.invalid(
          "unsupported URL #{inspect(redact_url(url))}; expected #{Enum.join(@url_schemes, ", ")}"
        )

      scheme ->
        Error.invalid(
          "unsupported URL scheme #{inspect(scheme <> "://")} in #{inspect(redact_url(url))}; " <>
            "expected #{Enum.join(@url_schemes, ", ")}"
        )
    end
  end

  # A malformed escape is kept as it is; a path that is then not a valid one is refused later.
  defp decode(path) do
    URI.decode(path)
  rescue
    ArgumentError -> path
  end

  defp bucket_url(provider, key, url, uri) do
    case uri.host do
      host when is_binary(host) and host != "" ->
        {:ok, provider, [{key, host}], uri.path || ""}

      _ ->
        Error.invalid("URL #{inspect(redact_url(url))} names no #{key}")
    end
  end

  defimpl Inspect do
    import Inspect.Algebra

    def inspect(store, opts) do
      fields =
        [
          backend: store.backend,
          bucket: store.bucket,
          root: store.root,
          prefix: store.prefix,
          fault: store.fault && true
        ]
        |> Enum.reject(fn {_, v} -> is_nil(v) end)

      container_doc("#ObjectStoreX.Store<", fields, ">", opts, fn {key, value}, opts ->
        concat([Atom.to_string(key), ": ", to_doc(value, opts)])
      end)
    end
  end
end
