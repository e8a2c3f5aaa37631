defmodule ObjectStoreX.Args do
  @moduledoc false
  # Argument validation shared by the public modules, and the builders that turn the arguments
  # of an `ObjectStoreX` function into its NIF's. Every check returns `{:ok, value}` or
  # `{:error, %ObjectStoreX.Error{reason: :invalid_argument}}` with a message naming the
  # argument; every builder returns what `ObjectStoreX.Call.run/2` takes.

  alias ObjectStoreX.{Call, Error, Store}

  # ---------------------------------------------------------------------------------------------
  # The NIF arguments of each `ObjectStoreX` function, validated in the order of its arguments.

  @put_opts [
    :mode,
    :content_type,
    :content_encoding,
    :content_disposition,
    :content_language,
    :cache_control,
    :metadata,
    :tags,
    :timeout
  ]

  @doc "`put_with_result/4`'s: store, path, iovec and native put options."
  @spec put(term(), term(), term(), term()) :: Call.args()
  def put(store, path, data, opts) do
    with {:ok, resource} <- store(store),
         {:ok, path} <- path("path", path),
         {:ok, iovec} <- iovec("data", data),
         {:ok, opts} <- opts(opts, @put_opts),
         {:ok, timeout} <- timeout(opts),
         {:ok, native} <- put_options(opts),
         do: {:ok, [resource, path, iovec, native], %{timeout: timeout}}
  end

  @get_opts [
    :range,
    :if_match,
    :if_none_match,
    :if_modified_since,
    :if_unmodified_since,
    :version,
    :head,
    :timeout
  ]

  @doc "`get/3`'s: store, path and native get options."
  @spec get(term(), term(), term()) :: Call.args()
  def get(store, path, opts) do
    with {:ok, resource} <- store(store),
         {:ok, path} <- path("path", path),
         {:ok, opts} <- opts(opts, @get_opts),
         {:ok, timeout} <- timeout(opts),
         {:ok, native} <- get_options(opts),
         do: {:ok, [resource, path, native], %{timeout: timeout}}
  end

  @many_defaults [max_concurrency: 16, ordered: true]
  @many_keys [:timeout | Keyword.keys(@many_defaults)]
  @get_many_opts [:range, :if_modified_since, :if_unmodified_since, :head, :timeout]

  @doc """
  `ObjectStoreX.Stream.get_many/3`'s: the store, the native get options shared by every object,
  the timeout of each object (nil: none), and how many at once and whether in order.
  """
  @spec get_many(term(), term()) ::
          {:ok, reference(), map(), non_neg_integer() | nil, pos_integer(), boolean()}
          | {:error, Error.t()}
  def get_many(store, opts), do: many(store, opts, @get_many_opts, &get_options/1)

  @doc "`ObjectStoreX.Stream.put_many/3`'s, as `get_many/2`'s with the native put options."
  @spec put_many(term(), term()) ::
          {:ok, reference(), map(), non_neg_integer() | nil, pos_integer(), boolean()}
          | {:error, Error.t()}
  def put_many(store, opts), do: many(store, opts, @put_opts, &put_options/1)

  defp many(store, opts, allowed, native_options) do
    with {:ok, resource} <- store(store),
         {:ok, opts} <- opts(opts, allowed ++ Keyword.keys(@many_defaults), @many_defaults),
         :ok <- positive_integers(opts, [:max_concurrency]),
         {:ok, ordered} <- boolean(":ordered", opts.ordered),
         {:ok, timeout} <- timeout(opts),
         {:ok, native} <- opts |> Map.drop(@many_keys) |> native_options.() do
      {:ok, resource, native, if(timeout != :infinity, do: timeout), opts.max_concurrency,
       ordered}
    end
  end

  # No options, the common case, skips the checks: the answer is always the same.
  @no_get_options %{
    range: nil,
    if_match: nil,
    if_none_match: nil,
    if_modified_since: nil,
    if_unmodified_since: nil,
    version: nil,
    head: false
  }
  defp get_options(opts) when opts == %{}, do: {:ok, @no_get_options}

  defp get_options(opts) do
    with {:ok, range} <- range(":range", opts[:range]),
         {:ok, if_match} <- optional_header(":if_match", opts[:if_match]),
         {:ok, if_none_match} <- optional_header(":if_none_match", opts[:if_none_match]),
         {:ok, modified} <- optional_datetime(":if_modified_since", opts[:if_modified_since]),
         {:ok, unmodified} <-
           optional_datetime(":if_unmodified_since", opts[:if_unmodified_since]),
         {:ok, version} <- optional_version(":version", opts[:version]),
         {:ok, head} <- boolean(":head", Map.get(opts, :head, false)) do
      {:ok,
       %{
         range: range,
         if_match: if_match,
         if_none_match: if_none_match,
         if_modified_since: modified,
         if_unmodified_since: unmodified,
         version: version,
         head: head
       }}
    end
  end

  @doc "The store and path of a call on one object that takes only `:timeout` (head, delete)."
  @spec object(term(), term(), term()) :: Call.args()
  def object(store, path, opts) do
    with {:ok, resource} <- store(store),
         {:ok, path} <- path("path", path),
         {:ok, timeout} <- only_timeout(opts),
         do: {:ok, [resource, path], %{timeout: timeout}}
  end

  @doc "`get_ranges/4`'s: store, path and `{first, stop}` pairs (stop exclusive)."
  @spec get_ranges(term(), term(), term(), term()) :: Call.args()
  def get_ranges(store, path, ranges, opts) do
    with {:ok, resource} <- store(store),
         {:ok, path} <- path("path", path),
         {:ok, ranges} <- bounded_ranges(ranges),
         {:ok, timeout} <- only_timeout(opts),
         do: {:ok, [resource, path, ranges], %{timeout: timeout}}
  end

  defp bounded_ranges(ranges) do
    if is_list(ranges) and proper_list?(ranges),
      do: map_all(ranges, &bounded_range/1),
      else: Error.invalid("ranges must be a list of {first, last} pairs, got: #{brief(ranges)}")
  end

  defp bounded_range(range) do
    case range("ranges", range) do
      {:ok, {:bounded, first, stop}} -> {:ok, {first, stop}}
      {:ok, _} -> Error.invalid("ranges must be {first, last} pairs, got: #{brief(range)}")
      error -> error
    end
  end

  @doc "`delete_many/3`'s: store and paths."
  @spec delete_many(term(), term(), term()) :: Call.args()
  def delete_many(store, paths, opts) do
    with {:ok, resource} <- store(store),
         {:ok, paths} <- path_list(paths),
         {:ok, timeout} <- only_timeout(opts),
         do: {:ok, [resource, paths], %{timeout: timeout}}
  end

  defp path_list(paths) do
    if is_list(paths) and proper_list?(paths),
      do: map_all(paths, &path("paths", &1)),
      else: Error.invalid("paths must be a list of strings, got: #{brief(paths)}")
  end

  @doc "The copy and rename functions': store, `op` (`:copy` or `:rename`), from, to, overwrite."
  @spec move(:copy | :rename, term(), term(), term(), boolean(), term()) :: Call.args()
  def move(op, store, from, to, overwrite, opts) do
    with {:ok, resource} <- store(store),
         {:ok, from} <- path("from", from),
         {:ok, to} <- path("to", to),
         {:ok, timeout} <- only_timeout(opts),
         do: {:ok, [resource, op, from, to, overwrite], %{timeout: timeout}}
  end

  @doc "`list/2`'s and `list_with_delimiter/2`'s: store, prefix and offset."
  @spec list(term(), term()) :: Call.args()
  def list(store, opts) do
    with {:ok, resource} <- store(store),
         {:ok, opts} <- opts(opts, [:prefix, :offset, :timeout]),
         {:ok, prefix} <- optional_path(":prefix", opts[:prefix]),
         {:ok, offset} <- optional_path(":offset", opts[:offset]),
         {:ok, timeout} <- timeout(opts),
         do: {:ok, [resource, list_prefix(prefix), offset], %{timeout: timeout}}
  end

  @doc "A listing's prefix as the native side takes it: without surrounding slashes."
  @spec list_prefix(String.t() | nil) :: String.t() | nil
  def list_prefix(prefix), do: prefix && String.trim(prefix, "/")

  @methods %{get: "GET", put: "PUT", delete: "DELETE", head: "HEAD", post: "POST"}

  # S3's longest presigned URL (SigV4); GCS's V4 signatures have the same limit.
  @max_expires_in 604_800

  @doc "`sign_url/4`'s: store, HTTP method, path and expiry in seconds; no options."
  @spec sign_url(term(), term(), term(), term()) :: Call.args()
  def sign_url(store, method, path, expires_in) do
    with {:ok, resource} <- store(store),
         {:ok, method} <- method(method),
         {:ok, path} <- path("path", path),
         {:ok, expires_in} <- expires(expires_in),
         do: {:ok, [resource, method, path, expires_in], %{timeout: :infinity}}
  end

  defp method(method) do
    case Map.fetch(@methods, method) do
      {:ok, name} ->
        {:ok, name}

      :error ->
        Error.invalid(
          "method must be one of #{inspect(Map.keys(@methods))}, got: #{brief(method)}"
        )
    end
  end

  defp expires(seconds) when is_integer(seconds) and seconds > @max_expires_in,
    do: too_large("expires_in (seconds)", seconds, @max_expires_in)

  defp expires(seconds) when is_integer(seconds) and seconds > 0, do: {:ok, seconds}

  defp expires(other),
    do: Error.invalid("expires_in must be a positive integer of seconds, got: #{brief(other)}")

  @download_file_defaults [
    chunk_size: 8 * 1_048_576,
    concurrency: 8,
    timeout: :infinity,
    hash: nil,
    on_progress: nil,
    on_complete: nil
  ]

  @doc "`download_file/4`'s: store, path, absolute local path and native options."
  @spec download_file(term(), term(), term(), term()) :: Call.args()
  def download_file(store, path, local_path, opts) do
    with {:ok, resource} <- store(store),
         {:ok, path} <- path("path", path),
         {:ok, local_path} <- path("local_path", local_path),
         {:ok, opts} <-
           opts(opts, Keyword.keys(@download_file_defaults), @download_file_defaults),
         {:ok, timeout} <- timeout(opts),
         :ok <- positive_integers(opts, [:chunk_size, :concurrency]),
         {:ok, hash} <- hash(opts.hash),
         :ok <- optional_fun(opts, :on_progress, 1),
         :ok <- optional_fun(opts, :on_complete, 1) do
      native = %{
        chunk_size: opts.chunk_size,
        concurrency: opts.concurrency,
        progress: opts.on_progress != nil,
        hash: hash
      }

      {:ok, [resource, path, Path.expand(local_path), native],
       %{
         timeout: timeout,
         on_progress: opts.on_progress,
         on_complete: opts.on_complete,
         final: &elem(&1, 1)
       }}
    end
  end

  defp only_timeout(opts) do
    with {:ok, opts} <- opts(opts, [:timeout]), do: timeout(opts)
  end

  # ---------------------------------------------------------------------------------------------
  # Checks

  def store(%Store{resource: resource}) when is_reference(resource) do
    # A reference is not enough: a struct built by hand or received from another node holds
    # no store of this VM, and must be refused here rather than fail inside a NIF call.
    if ObjectStoreX.Native.store_valid(resource),
      do: {:ok, resource},
      else:
        Error.invalid(
          "the store argument holds no live store of this VM (built by hand, or made on node " <>
            "#{inspect(node(resource))}): build it with ObjectStoreX.new/2 on this node"
        )
  end

  def store(other),
    do:
      Error.invalid(
        "expected an %ObjectStoreX.Store{} as the store argument, got: #{brief(other)}"
      )

  # S3's, GCS's and Azure's longest key; a longer one can also make a request URI that the
  # HTTP client refuses (it panics building it).
  @max_path 1024

  @doc "The longest object path, in bytes."
  def max_path, do: @max_path

  def path(name, path) when is_binary(path) do
    cond do
      path == "" -> {:error, %Error{reason: :invalid_path, message: "#{name} must not be empty"}}
      not String.valid?(path) -> Error.invalid("#{name} must be valid UTF-8")
      byte_size(path) > @max_path -> long_path(name, path)
      true -> {:ok, path}
    end
  end

  def path(name, other), do: Error.invalid("#{name} must be a string, got: #{brief(other)}")

  defp long_path(name, path) do
    {:error,
     %Error{
       reason: :invalid_path,
       message: "#{name} must be at most #{@max_path} bytes, got #{byte_size(path)}"
     }}
  end

  @doc "A prefix or listing offset: nil, or a path that may be empty."
  def optional_path(_name, nil), do: {:ok, nil}
  def optional_path(_name, ""), do: {:ok, ""}
  def optional_path(name, value) when is_binary(value), do: path(name, value)
  def optional_path(name, other), do: optional_string(name, other)

  @doc "nil, or a string that `header_value/2` accepts."
  def optional_header(_name, nil), do: {:ok, nil}
  def optional_header(name, value) when is_binary(value), do: header_value(name, value)
  def optional_header(name, other), do: optional_string(name, other)

  @doc """
  `{:ok, value}` for a string that may be sent as an HTTP header value: valid UTF-8 without
  control characters (a CR or LF would split the header; the HTTP client refuses them).
  """
  def header_value(name, value) do
    with {:ok, value} <- utf8(name, value) do
      if String.match?(value, ~r/[\x00-\x08\x0a-\x1f\x7f]/),
        do: Error.invalid("#{name} must not contain control characters"),
        else: {:ok, value}
    end
  end

  @doc """
  Validates a keyword list against `allowed` (a list of keys) and returns it as a map, with
  `defaults` for the keys not set. A nil value means "not set", as with `System.get_env/1`.
  """
  def opts(opts, allowed, defaults \\ [])
  def opts([], _allowed, []), do: {:ok, %{}}

  def opts(opts, allowed, defaults) do
    with {:ok, opts} <- keyword(opts) do
      case Enum.reject(Keyword.keys(opts), &(&1 in allowed)) do
        [] ->
          {:ok, Map.merge(Map.new(defaults), Map.new(opts))}

        unknown ->
          Error.invalid(
            "unknown option#{if length(unknown) > 1, do: "s"} #{Enum.map_join(unknown, ", ", &inspect/1)}; " <>
              "valid options are: #{Enum.map_join(allowed, ", ", &inspect/1)}"
          )
      end
    end
  end

  @doc "Checks that `opts` is a keyword list; returns it without its nil (not set) values."
  def keyword(opts) do
    if is_list(opts) and Keyword.keyword?(opts),
      do: {:ok, Enum.reject(opts, fn {_key, value} -> is_nil(value) end)},
      else: Error.invalid("options must be a keyword list, got: #{brief(opts)}")
  end

  # The largest timeout `receive ... after` accepts; a larger one raises once the request has
  # started, so it is refused up front.
  @max_timeout 4_294_967_295

  @doc "The largest timeout in ms: 2^32 - 1."
  def max_timeout, do: @max_timeout

  def timeout(%{timeout: t})
      when t == :infinity or (is_integer(t) and t >= 0 and t <= @max_timeout),
      do: {:ok, t}

  def timeout(%{timeout: t}),
    do:
      Error.invalid(
        ":timeout must be a non-negative integer of ms, at most #{@max_timeout}, or :infinity, got: #{brief(t)}"
      )

  def timeout(_), do: {:ok, :infinity}

  @gib 1_073_741_824

  # The documented maxima of the integer options. They keep each value within what the native
  # side takes (u64/usize) and refuse settings that could only exhaust memory; 5 GiB is S3's
  # largest part.
  @limits %{
    chunk_size: @gib,
    prefetch: 1_000,
    concurrency: 1_000,
    max_concurrency: 1_000,
    page_size: 100_000,
    part_size: 5 * @gib
  }

  # S3's smallest part (but the last), which GCS and Azure accept too.
  @min_part_size 5 * 1_048_576

  @doc "The smallest `:part_size`: 5 MiB."
  @spec min_part_size() :: pos_integer()
  def min_part_size, do: @min_part_size

  @hashes [:sha256, :sha1, :md5, :crc32c]

  @doc "The digests that `:hash` may name."
  @spec hashes() :: [atom()]
  def hashes, do: @hashes

  @doc "`{:ok, name}` for a `:hash` that the native side computes (nil: none), as a string."
  @spec hash(term()) :: {:ok, String.t() | nil} | {:error, Error.t()}
  def hash(nil), do: {:ok, nil}
  def hash(hash) when hash in @hashes, do: {:ok, Atom.to_string(hash)}

  def hash(other),
    do: Error.invalid(":hash must be one of #{inspect(@hashes)}, got: #{brief(other)}")

  @doc "The documented maximum of an integer option."
  def limit(key), do: Map.fetch!(@limits, key)

  @doc "`:ok` when each of `keys` is a positive integer no larger than its documented maximum."
  def positive_integers(opts, keys) do
    case Enum.find(keys, fn k -> not (is_integer(opts[k]) and opts[k] > 0) end) do
      nil ->
        case Enum.find(keys, fn k -> opts[k] > limit(k) end) do
          nil -> :ok
          key -> too_large(inspect(key), opts[key], limit(key))
        end

      key ->
        Error.invalid("#{inspect(key)} must be a positive integer, got: #{brief(opts[key])}")
    end
  end

  @doc "The error for an integer above its documented maximum."
  def too_large(name, value, max),
    do: Error.invalid("#{name} must be at most #{digits(max)}, got: #{digits(value)}")

  # 1_073_741_824 rather than 1073741824: big numbers are read, and compared, more easily.
  defp digits(n) when is_integer(n) and n >= 10_000 do
    n
    |> Integer.to_string()
    |> String.reverse()
    |> String.graphemes()
    |> Enum.chunk_every(3)
    |> Enum.join("_")
    |> String.reverse()
  end

  defp digits(n), do: brief(n)

  @doc "Turns a binary or iodata into a list of binaries, without copying large binaries."
  def iovec(_name, data) when is_binary(data), do: {:ok, [data]}

  def iovec(name, data) when is_list(data) do
    {:ok, :erlang.iolist_to_iovec(data)}
  rescue
    ArgumentError -> Error.invalid("#{name} must be a binary or iodata")
  end

  def iovec(name, other),
    do: Error.invalid("#{name} must be a binary or iodata, got: #{brief(other)}")

  # A version goes into the request's URI (S3's versionId, GCS's generation), whose length the
  # HTTP client caps at 64 KiB; real ones are tens of bytes.
  @max_version 1024

  @doc "nil, or an object version id: a string of at most #{@max_version} bytes."
  def optional_version(_name, nil), do: {:ok, nil}

  def optional_version(name, value) when is_binary(value) and byte_size(value) > @max_version,
    do: Error.invalid("#{name} must be at most #{@max_version} bytes, got #{byte_size(value)}")

  def optional_version(name, value), do: optional_string(name, value)

  def optional_string(_name, nil), do: {:ok, nil}
  def optional_string(name, value) when is_binary(value), do: utf8(name, value)

  def optional_string(name, other),
    do: Error.invalid("#{name} must be a string, got: #{brief(other)}")

  @doc """
  `{:ok, value}` for a valid UTF-8 binary (the native side takes strings only). The message
  does not quote the value, which may be a credential.
  """
  def utf8(name, value) do
    if String.valid?(value), do: {:ok, value}, else: Error.invalid("#{name} must be valid UTF-8")
  end

  def optional_datetime(_name, nil), do: {:ok, nil}

  def optional_datetime(name, %DateTime{} = dt) do
    {:ok, DateTime.to_unix(dt, :microsecond)}
  rescue
    # A hand-built struct with fields out of range.
    _ -> Error.invalid("#{name} is not a valid DateTime")
  end

  def optional_datetime(name, other),
    do: Error.invalid("#{name} must be a DateTime, got: #{brief(other)}")

  def boolean(_name, value) when is_boolean(value), do: {:ok, value}
  def boolean(name, other), do: Error.invalid("#{name} must be a boolean, got: #{brief(other)}")

  # Byte offsets are u64 natively, and the end of {first, last} is sent as last + 1.
  @max_offset 18_446_744_073_709_551_614

  @doc "The largest byte offset in a range: 2^64 - 2."
  def max_offset, do: @max_offset

  @doc """
  Normalises a range to the native form `{:bounded, first, last + 1}`, `{:offset, n, 0}` or
  `{:suffix, n, 0}`. Ranges are inclusive, as in HTTP: `{0, 999}` is the first 1000 bytes.
  """
  def range(_name, nil), do: {:ok, nil}

  def range(name, {first, last}) when is_integer(first) and is_integer(last) do
    cond do
      first < 0 or last < 0 ->
        Error.invalid("#{name} must not be negative, got: #{inspect({first, last})}")

      last < first ->
        Error.invalid("#{name} is inverted (last < first), got: #{inspect({first, last})}")

      last > @max_offset ->
        too_large("#{name} bounds", last, @max_offset)

      true ->
        {:ok, {:bounded, first, last + 1}}
    end
  end

  def range(name, {kind, n}) when kind in [:offset, :suffix] and is_integer(n) and n >= 0 do
    if n > @max_offset, do: too_large("#{name} bounds", n, @max_offset), else: {:ok, {kind, n, 0}}
  end

  def range(name, other),
    do:
      Error.invalid(
        "#{name} must be {first, last} (inclusive), {:offset, n} or {:suffix, n} with non-negative integers, got: #{brief(other)}"
      )

  @attribute_opts [
    :content_type,
    :content_encoding,
    :content_disposition,
    :content_language,
    :cache_control
  ]

  @doc "The object attribute options accepted by writes."
  def attribute_opts, do: @attribute_opts

  @doc "Builds the native put options (mode, attributes, metadata, tags) from validated opts."
  @no_put_options %{
    mode: :overwrite,
    etag: nil,
    version: nil,
    attributes: [],
    metadata: [],
    tags: []
  }
  def put_options(opts) when opts == %{}, do: {:ok, @no_put_options}

  def put_options(opts) do
    with {:ok, {mode, etag, version}} <- put_mode(Map.get(opts, :mode, :overwrite)),
         {:ok, attributes} <- string_pairs(Map.take(opts, @attribute_opts), "attribute"),
         {:ok, metadata} <- string_map(opts, :metadata),
         {:ok, tags} <- string_map(opts, :tags) do
      {:ok,
       %{
         mode: mode,
         etag: etag,
         version: version,
         attributes: attributes,
         metadata: metadata,
         tags: tags
       }}
    end
  end

  defp put_mode(mode) when mode in [:overwrite, :create], do: {:ok, {mode, nil, nil}}
  defp put_mode({:update, %ObjectStoreX.PutResult{etag: e, version: v}}), do: update_mode(e, v)
  defp put_mode({:update, %{etag: e} = m}), do: update_mode(e, Map.get(m, :version))
  defp put_mode({:update, etag}) when is_binary(etag), do: update_mode(etag, nil)

  defp put_mode(other),
    do:
      Error.invalid(
        ":mode must be :overwrite, :create or {:update, %ObjectStoreX.PutResult{} | etag}, got: #{brief(other)}"
      )

  defp update_mode(etag, version) do
    cond do
      not ((is_binary(etag) or is_nil(etag)) and (is_binary(version) or is_nil(version)) and
               not (is_nil(etag) and is_nil(version))) ->
        Error.invalid(":mode {:update, _} needs a string etag or version")

      not Enum.all?([etag, version], &(is_nil(&1) or String.valid?(&1))) ->
        Error.invalid(":mode {:update, _} etag and version must be valid UTF-8")

      # The ETag is sent as If-Match.
      etag ->
        with {:ok, etag} <- header_value(":mode {:update, etag}", etag),
             {:ok, version} <- optional_version(":mode {:update, version}", version),
             do: {:ok, {:update, etag, version}}

      true ->
        with {:ok, version} <- optional_version(":mode {:update, version}", version),
             do: {:ok, {:update, etag, version}}
    end
  end

  defp string_pairs(map, what) do
    map_all(Enum.sort(map), fn
      {k, v} when is_binary(v) ->
        with {:ok, v} <- header_value("#{what} #{inspect(k)}", v), do: {:ok, {k, v}}

      {k, v} ->
        Error.invalid("#{what} #{inspect(k)} must be a string, got: #{brief(v)}")
    end)
  end

  defp string_map(opts, key) do
    case Map.get(opts, key, %{}) do
      # A struct is a map that Enum cannot sort.
      map when is_map(map) and not is_struct(map) ->
        map_all(Enum.sort(map), fn
          {k, v} when is_binary(k) and is_binary(v) -> string_entry(key, k, v)
          _ -> Error.invalid("#{inspect(key)} must map strings to strings")
        end)

      other ->
        Error.invalid("#{inspect(key)} must be a map of strings, got: #{brief(other)}")
    end
  end

  # Metadata travels as HTTP headers (x-amz-meta-KEY: VALUE): its keys must be header-name
  # tokens (of which the HTTP client takes 64 KiB at most; S3 takes 2 KiB of metadata in all)
  # and its values header values. Tags are encoded, so any UTF-8 will do.
  @max_metadata_key 1024
  defp string_entry(:metadata, k, v) do
    cond do
      not String.valid?(k) ->
        Error.invalid(":metadata keys must be valid UTF-8")

      not String.match?(k, ~r/\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\z/) ->
        Error.invalid(
          ":metadata keys must be letters, digits or !#$%&'*+-.^_`|~, got: #{brief(k)}"
        )

      byte_size(k) > @max_metadata_key ->
        Error.invalid(
          ":metadata keys must be at most #{@max_metadata_key} bytes, got #{byte_size(k)}"
        )

      true ->
        with {:ok, v} <- header_value(":metadata #{inspect(k)}", v), do: {:ok, {k, v}}
    end
  end

  defp string_entry(key, k, v) do
    if String.valid?(k) and String.valid?(v),
      do: {:ok, {k, v}},
      else: Error.invalid("#{inspect(key)} keys and values must be valid UTF-8")
  end

  @doc "Whether `term` is a proper list (Enum raises on an improper one)."
  def proper_list?([]), do: true
  def proper_list?([_ | tail]), do: proper_list?(tail)
  def proper_list?(_), do: false

  @doc "Runs `fun` over `list`, stopping at the first error."
  def map_all(list, fun) do
    Enum.reduce_while(list, {:ok, []}, fn item, {:ok, acc} ->
      case fun.(item) do
        {:ok, value} -> {:cont, {:ok, [value | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  @doc "A short rendering of a bad value for error messages."
  def brief(value), do: inspect(value, limit: 5, printable_limit: 40)

  @doc "`:ok` when `opts[key]` is nil or a function of `arity`."
  @spec optional_fun(map() | keyword(), atom(), arity()) :: :ok | {:error, Error.t()}
  def optional_fun(opts, key, arity) do
    case opts[key] do
      nil ->
        :ok

      fun when is_function(fun, arity) ->
        :ok

      other ->
        Error.invalid(
          "#{inspect(key)} must be a function of arity #{arity}, got: #{brief(other)}"
        )
    end
  end
end
