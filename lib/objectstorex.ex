defmodule ObjectStoreX do
  @moduledoc """
  One interface to object storage: Amazon S3 and S3-compatible services, Google Cloud Storage,
  Azure Blob Storage, HTTP/WebDAV servers, the local filesystem and memory.

      iex> {:ok, store} = ObjectStoreX.new(:memory)
      iex> ObjectStoreX.put(store, "small.txt", "hello")
      :ok
      iex> {:ok, data, meta} = ObjectStoreX.get(store, "small.txt", range: {0, 3})
      iex> {data, meta.size}
      {"hell", 5}

  ## How calls run

  Every operation is carried out by a native library (Rust's `object_store` crate) on its own
  Tokio runtime. The calling process never blocks a BEAM scheduler: the native call returns in
  microseconds and the process waits in a plain `receive` for the result. Object bytes returned
  to Elixir are not copied (they are binaries backed by the native buffer); bytes written are
  not copied either.

  ## Return values and errors

  Each function has one return shape: `:ok`, `{:ok, value}` (or `{:ok, data, meta}` for
  `get/3`, `{:ok, deleted, failed}` for `delete_many/3`) on success and
  `{:error, %ObjectStoreX.Error{}}` on failure. Each has a bang variant that returns the value
  and raises the same `ObjectStoreX.Error` on failure. Bad arguments give
  `reason: :invalid_argument` (or `:invalid_path`) with a message naming the argument.

  ## Paths and ranges

  Paths are strings such as `"data/2025/file.bin"`, relative to the store's `:prefix`. Byte
  ranges are inclusive, as in HTTP: `{0, 999}` is the first 1000 bytes; a range running past the
  end of the object is clamped to it. `{:offset, n}` reads from byte `n` to the end and
  `{:suffix, n}` reads the last `n` bytes (all of a shorter object, nothing of an empty one). A
  range that starts at or past the end gives `:invalid_range`; so, of an empty object, does any
  range but a suffix. Every backend answers ranges alike: where a server refuses or garbles a
  suffix (Azure's client sends none), the object's size is asked for first (a HEAD) and the
  bytes read as a bounded range of that version.

  ## Common options

  Every operation on objects except `sign_url/4` accepts `:timeout` (milliseconds, at most
  4_294_967_295, or `:infinity`, the default): when it expires, the request is cancelled and
  `{:error, %ObjectStoreX.Error{reason: :timeout}}` is returned. Network requests are also
  bounded by the store's own `:timeout`, `:read_timeout` and `:retry` settings (see `new/2`),
  which are all that bound `sign_url/4`: it takes no options.

  An option given as `nil` is not set: its default applies, as if it were left out (so
  `region: System.get_env("REGION")` needs no special case). This holds for every option of
  every function, store options included.
  """

  alias ObjectStoreX.{
    Args,
    Call,
    Error,
    ListResult,
    Meta,
    Native,
    PutResult,
    Store,
    Summary,
    Upload
  }

  @type store :: Store.t()
  @type path :: String.t()
  @type range ::
          {non_neg_integer(), non_neg_integer()}
          | {:offset, non_neg_integer()}
          | {:suffix, non_neg_integer()}
  @type error :: {:error, Error.t()}

  # ---------------------------------------------------------------------------------------------
  # Stores

  @doc """
  Builds a store for `provider`.

  Building a store does no network I/O; credentials are checked by the first request.

  ## Providers and their options

    * `:memory` - an in-process store, for tests and caches.
    * `:local` - files under `:root` (required; created if missing).
    * `:s3` - Amazon S3 or any S3-compatible service: `:bucket` (required), `:region`,
      `:endpoint` (e.g. `"http://127.0.0.1:9000"` for a compatible service), `:access_key_id`,
      `:secret_access_key`, `:session_token`, `:virtual_hosted_style_request` (boolean, default
      path style), `:skip_signature` (boolean, for public buckets), `:conditional_put`
      (`"etag"`, the default, or `"disabled"`), `:copy_if_not_exists` (e.g. `"multipart"`, or
      `"header:NAME:VALUE"` for services that support it), `:checksum_algorithm` (`"sha256"`).
      Missing settings are read from the standard `AWS_*` environment variables.
    * `:gcs` - Google Cloud Storage: `:bucket`, `:service_account_path`,
      `:service_account_key` (the JSON key as a string), `:application_credentials`.
      Missing settings are read from the `GOOGLE_*` environment variables.
    * `:azure` - Azure Blob Storage: `:account`, `:container`, `:access_key`, `:sas_token`,
      `:bearer_token`, `:client_id`, `:client_secret`, `:tenant_id`, `:endpoint`,
      `:use_emulator` (boolean; Azurite's well-known account, at `AZURITE_BLOB_STORAGE_URL` or
      `http://127.0.0.1:10000`). Missing settings are read from the `AZURE_*` variables.
    * `:http` - a plain HTTP or WebDAV server: `:url` (required).

  ## Options for every provider

    * `:prefix` - scope the store under this path: every path is relative to it.

  ## Options for the network providers (`:s3`, `:gcs`, `:azure`, `:http`)

  Durations are in ms, at most 4_294_967_295.

    * `:timeout` - whole-request timeout in ms, default 300_000 (streamed downloads resume
      transparently when it cuts them)
    * `:connect_timeout` - connection timeout in ms (default 5_000)
    * `:read_timeout` - fails a request when no data arrives for this many ms, default 30_000
    * `:pool_idle_timeout` - how long an idle connection is kept, in ms
    * `:proxy_url` - an HTTP(S) proxy
    * `:allow_http` - permit plain `http://` endpoints (default `false`)
    * `:retry` - keyword list: `:max_retries` (default 10), `:retry_timeout` (ms, default
      180_000), `:init_backoff` (ms, positive, default 100), `:max_backoff` (ms, at least
      `:init_backoff`, default 15_000), `:base` (the backoff's growth factor, a number greater
      than 1.0 and at most 1000, default 2.0); integers at most 4_294_967_295
    * `:from_env` - read the provider's standard environment variables first (default `true`),
      as this VM sees them: `System.put_env/2` counts (`AZURITE_BLOB_STORAGE_URL`, read by
      the emulator setting, is the exception: it is read from the OS process's environment)

  Every request carries the options that address the store, so they are checked when it is
  built, whether given here or read from the environment: `:bucket` is 1 to 255 ASCII letters,
  digits, `.`, `-` or `_` (on S3 also `:`, for Ceph's `tenant:bucket`; `:account` the same
  without `.`); an `:endpoint` is an `http://` or `https://` URL with a host and no query or
  fragment, and `:url` one with a host; `:endpoint`, `:container` and `:url` are at most 2048
  bytes; `:region`, `:access_key_id`, `:session_token` and `:bearer_token` are visible ASCII.
  Unknown options are rejected by name.
  """
  @spec new(Store.backend(), keyword()) :: {:ok, store()} | error()
  def new(provider, opts \\ []), do: Store.new(provider, opts)

  @doc """
  Like `new/2`, but returns the store or raises `ObjectStoreX.Error`.

  ## Options

  The same as `new/2`.
  """
  @spec new!(Store.backend(), keyword()) :: store()
  def new!(provider, opts \\ []), do: unwrap!(new(provider, opts))

  @doc """
  Builds a store from a URL.

    * `memory://`
    * `file:///absolute/dir`
    * `s3://bucket/optional/prefix` (also `s3a://`)
    * `gs://bucket/optional/prefix`
    * `az://container/optional/prefix`, `abfs://container@account.dfs.core.windows.net/prefix`
    * `http://host:port/path`, `https://...`

  ## Options

  Any option of `new/2` for the provider; they override what the URL says.
  """
  @spec from_url(String.t(), keyword()) :: {:ok, store()} | error()
  def from_url(url, opts \\ []), do: Store.from_url(url, opts)

  @doc """
  Like `from_url/2`, but returns the store or raises `ObjectStoreX.Error`.

  ## Options

  The same as `from_url/2`.
  """
  @spec from_url!(String.t(), keyword()) :: store()
  def from_url!(url, opts \\ []), do: unwrap!(from_url(url, opts))

  # ---------------------------------------------------------------------------------------------
  # Writes

  @doc """
  Writes `data` (a binary or iodata) to `path` in one request.

  Returns `:ok`. Use `put_with_result/4` when you need the new ETag or version, e.g. for a
  compare-and-swap loop. For large objects, stream them with multipart uploads instead.

  ## Options

    * `:mode` - `:overwrite` (default); `:create` to fail with `:already_exists` when the object
      exists; `{:update, version}` to write only if the object is still at `version` (a
      `%ObjectStoreX.PutResult{}`, an ETag string, or `%{etag: _, version: _}`), else
      `:precondition_failed`. Backends without conditional writes return `:not_supported`.
    * `:content_type`, `:content_encoding`, `:content_disposition`, `:content_language`,
      `:cache_control` - stored with the object where the backend supports attributes (on
      Azure, ASCII only: it sends them as ASCII headers)
    * `:metadata` - a map of user metadata, string keys (header-name characters, at most 1024
      bytes) and values (ASCII only on Azure)
    * `:tags` - a map of object tags, string keys and values (S3, Azure)
    * `:timeout` - see "Common options" in the module doc
  """
  @spec put(store(), path(), iodata(), keyword()) :: :ok | error()
  def put(store, path, data, opts \\ []) do
    with {:ok, _result} <- put_with_result(store, path, data, opts), do: :ok
  end

  @doc """
  Like `put/4`, but returns `:ok` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `put/4`.
  """
  @spec put!(store(), path(), iodata(), keyword()) :: :ok
  def put!(store, path, data, opts \\ []), do: unwrap!(put(store, path, data, opts))

  @doc """
  Writes like `put/4` and returns `{:ok, %ObjectStoreX.PutResult{etag: _, version: _}}`.

      iex> store = ObjectStoreX.new!(:memory)
      iex> {:ok, v1} = ObjectStoreX.put_with_result(store, "counter", "1")
      iex> {:ok, _v2} = ObjectStoreX.put_with_result(store, "counter", "2", mode: {:update, v1})
      iex> {:error, %ObjectStoreX.Error{reason: reason}} =
      ...>   ObjectStoreX.put_with_result(store, "counter", "3", mode: {:update, v1})
      iex> reason
      :precondition_failed

  ## Options

  The same as `put/4`.
  """
  @spec put_with_result(store(), path(), iodata(), keyword()) :: {:ok, PutResult.t()} | error()
  def put_with_result(store, path, data, opts \\ []) do
    with {:ok, {etag, version}} <-
           Call.run(Args.put(store, path, data, opts), &Native.object_put/5),
         do: {:ok, %PutResult{etag: etag, version: version}}
  end

  @doc """
  Like `put_with_result/4`, but returns the `%ObjectStoreX.PutResult{}` or raises.

  ## Options

  The same as `put/4`.
  """
  @spec put_with_result!(store(), path(), iodata(), keyword()) :: PutResult.t()
  def put_with_result!(store, path, data, opts \\ []),
    do: unwrap!(put_with_result(store, path, data, opts))

  # ---------------------------------------------------------------------------------------------
  # Reads

  @doc """
  Reads an object, or part of it, into memory. Returns `{:ok, data, %ObjectStoreX.Meta{}}`,
  where the metadata describes the whole object.

      iex> store = ObjectStoreX.new!(:memory)
      iex> :ok = ObjectStoreX.put(store, "file.bin", :binary.copy("x", 5000))
      iex> {:ok, data, meta} = ObjectStoreX.get(store, "file.bin", range: {0, 999})
      iex> {byte_size(data), meta.size}
      {1000, 5000}

  ## Options

    * `:range` - `{first, last}` (inclusive), `{:offset, n}` or `{:suffix, n}`, with offsets
      at most 2^64 - 2; a range that starts past the end gives `:invalid_range`
    * `:if_match` - read only if the ETag matches, else `:precondition_failed`
    * `:if_none_match` - fail with `:not_modified` if the ETag matches
    * `:if_modified_since` - a `DateTime`; `:not_modified` if not changed since
    * `:if_unmodified_since` - a `DateTime`; `:precondition_failed` if changed since
    * `:version` - read this version of the object (an id of at most 1024 bytes)
    * `:head` - `true` to fetch only the metadata (data is `""`)
    * `:timeout` - see "Common options" in the module doc
  """
  @spec get(store(), path(), keyword()) :: {:ok, binary(), Meta.t()} | error()
  def get(store, path, opts \\ []) do
    with {:ok, {data, meta}} <- Call.run(Args.get(store, path, opts), &Native.object_get/4),
         do: {:ok, data, meta}
  end

  @doc """
  Like `get/3`, but returns the data or raises `ObjectStoreX.Error`.

  ## Options

  The same as `get/3`.
  """
  @spec get!(store(), path(), keyword()) :: binary()
  def get!(store, path, opts \\ []) do
    case get(store, path, opts) do
      {:ok, data, _meta} -> data
      {:error, error} -> raise error
    end
  end

  @doc """
  Returns an object's metadata without its data.

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec head(store(), path(), keyword()) :: {:ok, Meta.t()} | error()
  def head(store, path, opts \\ []),
    do: Call.run(Args.object(store, path, opts), &Native.object_head/3)

  @doc """
  Like `head/3`, but returns the metadata or raises `ObjectStoreX.Error`.

  ## Options

  The same as `head/3`.
  """
  @spec head!(store(), path(), keyword()) :: Meta.t()
  def head!(store, path, opts \\ []), do: unwrap!(head(store, path, opts))

  @doc """
  Reads several byte ranges of one object, concurrently, and returns them in the order given.

      iex> store = ObjectStoreX.new!(:memory)
      iex> :ok = ObjectStoreX.put(store, "data.parquet", "PAR1 ... footer PAR1")
      iex> ObjectStoreX.get_ranges(store, "data.parquet", [{0, 3}, {16, 19}])
      {:ok, ["PAR1", "PAR1"]}

  Ranges are inclusive `{first, last}` pairs, with offsets at most 2^64 - 2; one running past
  the end is clamped.

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec get_ranges(store(), path(), [{non_neg_integer(), non_neg_integer()}], keyword()) ::
          {:ok, [binary()]} | error()
  def get_ranges(store, path, ranges, opts \\ []),
    do: Call.run(Args.get_ranges(store, path, ranges, opts), &Native.object_get_ranges/4)

  @doc """
  Like `get_ranges/4`, but returns the list of binaries or raises `ObjectStoreX.Error`.

  ## Options

  The same as `get_ranges/4`.
  """
  @spec get_ranges!(store(), path(), [{non_neg_integer(), non_neg_integer()}], keyword()) :: [
          binary()
        ]
  def get_ranges!(store, path, ranges, opts \\ []),
    do: unwrap!(get_ranges(store, path, ranges, opts))

  # ---------------------------------------------------------------------------------------------
  # Deletes, copies, renames

  @doc """
  Deletes an object. Deleting an object that does not exist succeeds, on every backend.

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec delete(store(), path(), keyword()) :: :ok | error()
  def delete(store, path, opts \\ []) do
    with {:ok, _} <- Call.run(Args.object(store, path, opts), &Native.object_delete/3), do: :ok
  end

  @doc """
  Like `delete/3`, but returns `:ok` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `delete/3`.
  """
  @spec delete!(store(), path(), keyword()) :: :ok
  def delete!(store, path, opts \\ []), do: unwrap!(delete(store, path, opts))

  @doc """
  Deletes many objects, in bulk requests where the backend has them (S3 deletes up to 1000 per
  request). Returns `{:ok, deleted_count, failed}` where `failed` lists `{path, error}` for each
  object that could not be deleted; missing objects count as deleted.

      iex> store = ObjectStoreX.new!(:memory)
      iex> :ok = ObjectStoreX.put(store, "a", "1")
      iex> ObjectStoreX.delete_many(store, ["a", "never-written"])
      {:ok, 2, []}

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec delete_many(store(), [path()], keyword()) ::
          {:ok, non_neg_integer(), [{path(), Error.t()}]} | error()
  def delete_many(store, paths, opts \\ []) do
    with {:ok, {deleted, failed}} <-
           Call.run(Args.delete_many(store, paths, opts), &Native.object_delete_many/3),
         do: {:ok, deleted, Enum.map(failed, fn {path, e} -> {path, Call.error(e)} end)}
  end

  @doc """
  Like `delete_many/3`, but returns `{deleted_count, failed}` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `delete_many/3`.
  """
  @spec delete_many!(store(), [path()], keyword()) :: {non_neg_integer(), [{path(), Error.t()}]}
  def delete_many!(store, paths, opts \\ []) do
    case delete_many(store, paths, opts) do
      {:ok, deleted, failed} -> {deleted, failed}
      {:error, error} -> raise error
    end
  end

  @doc """
  Copies an object within the store, replacing any object at `to`.

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec copy(store(), path(), path(), keyword()) :: :ok | error()
  def copy(store, from, to, opts \\ []), do: move(:copy, store, from, to, true, opts)

  @doc """
  Like `copy/4`, but returns `:ok` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `copy/4`.
  """
  @spec copy!(store(), path(), path(), keyword()) :: :ok
  def copy!(store, from, to, opts \\ []), do: unwrap!(copy(store, from, to, opts))

  @doc """
  Copies an object only if nothing exists at `to`; otherwise returns `:already_exists`.
  On S3 this needs the store option `copy_if_not_exists: "multipart"` (or a header mode).

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec copy_if_not_exists(store(), path(), path(), keyword()) :: :ok | error()
  def copy_if_not_exists(store, from, to, opts \\ []),
    do: move(:copy, store, from, to, false, opts)

  @doc """
  Like `copy_if_not_exists/4`, but returns `:ok` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `copy_if_not_exists/4`.
  """
  @spec copy_if_not_exists!(store(), path(), path(), keyword()) :: :ok
  def copy_if_not_exists!(store, from, to, opts \\ []),
    do: unwrap!(copy_if_not_exists(store, from, to, opts))

  @doc """
  Moves an object within the store, replacing any object at `to`. On object stores without a
  native rename this is a copy followed by a delete.

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec rename(store(), path(), path(), keyword()) :: :ok | error()
  def rename(store, from, to, opts \\ []),
    do: move(:rename, store, from, to, true, opts)

  @doc """
  Like `rename/4`, but returns `:ok` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `rename/4`.
  """
  @spec rename!(store(), path(), path(), keyword()) :: :ok
  def rename!(store, from, to, opts \\ []), do: unwrap!(rename(store, from, to, opts))

  @doc """
  Moves an object only if nothing exists at `to`; otherwise returns `:already_exists`.

  ## Options

    * `:timeout` - see "Common options" in the module doc
  """
  @spec rename_if_not_exists(store(), path(), path(), keyword()) :: :ok | error()
  def rename_if_not_exists(store, from, to, opts \\ []),
    do: move(:rename, store, from, to, false, opts)

  @doc """
  Like `rename_if_not_exists/4`, but returns `:ok` or raises `ObjectStoreX.Error`.

  ## Options

  The same as `rename_if_not_exists/4`.
  """
  @spec rename_if_not_exists!(store(), path(), path(), keyword()) :: :ok
  def rename_if_not_exists!(store, from, to, opts \\ []),
    do: unwrap!(rename_if_not_exists(store, from, to, opts))

  defp move(op, store, from, to, overwrite, opts) do
    args = Args.move(op, store, from, to, overwrite, opts)
    with {:ok, _} <- Call.run(args, &Native.object_copy/6), do: :ok
  end

  # ---------------------------------------------------------------------------------------------
  # Listings

  @doc """
  Lists one level below a prefix: the objects directly under it and the common prefixes
  ("directories") below it. Returns `{:ok, %ObjectStoreX.ListResult{}}`.

  ## Options

    * `:prefix` - list under this path (default: the store's root)
    * `:offset` - only entries whose path sorts after this one
    * `:timeout` - see "Common options" in the module doc
  """
  @spec list_with_delimiter(store(), keyword()) :: {:ok, ListResult.t()} | error()
  def list_with_delimiter(store, opts \\ []) do
    with {:ok, {objects, prefixes}} <-
           Call.run(Args.list(store, opts), &Native.object_list_with_delimiter/4),
         do: {:ok, %ListResult{objects: objects, common_prefixes: prefixes}}
  end

  @doc """
  Like `list_with_delimiter/2`, but returns the `%ObjectStoreX.ListResult{}` or raises.

  ## Options

  The same as `list_with_delimiter/2`.
  """
  @spec list_with_delimiter!(store(), keyword()) :: ListResult.t()
  def list_with_delimiter!(store, opts \\ []), do: unwrap!(list_with_delimiter(store, opts))

  @doc """
  Lists every object under a prefix, recursively, into one list of `%ObjectStoreX.Meta{}`.
  The order is not guaranteed. For large buckets, prefer a streaming listing.

  ## Options

    * `:prefix` - list under this path (default: the store's root)
    * `:offset` - only objects whose path sorts after this one
    * `:timeout` - see "Common options" in the module doc
  """
  @spec list(store(), keyword()) :: {:ok, [Meta.t()]} | error()
  def list(store, opts \\ []), do: Call.run(Args.list(store, opts), &Native.object_list/4)

  @doc """
  Like `list/2`, but returns the list or raises `ObjectStoreX.Error`.

  ## Options

  The same as `list/2`.
  """
  @spec list!(store(), keyword()) :: [Meta.t()]
  def list!(store, opts \\ []), do: unwrap!(list(store, opts))

  # ---------------------------------------------------------------------------------------------
  # Files and transfers

  @doc """
  Uploads a local file as one object, read natively in part-size blocks, with the memory bound
  and abort guarantees of `ObjectStoreX.Stream.upload/4`. Returns `{:ok, summary}` with
  `%{etag:, version:, bytes:, parts:, duration_us:, throughput_mb_s:, digest:}`.

  ## Options

  The same as `ObjectStoreX.Stream.upload/4` except `:size_hint` (the file's size is used).
  `:on_progress` receives `%{bytes: sent, total: file_size}` at most every 100 ms while the
  file uploads, and once at the end.
  """
  @spec upload_file(store(), path(), Path.t(), keyword()) :: {:ok, map()} | error()
  def upload_file(store, path, local_path, opts \\ []),
    do: Upload.file(store, path, local_path, opts)

  @doc """
  Like `upload_file/4`, but returns the summary or raises `ObjectStoreX.Error`.

  ## Options

  The same as `upload_file/4`.
  """
  @spec upload_file!(store(), path(), Path.t(), keyword()) :: map()
  def upload_file!(store, path, local_path, opts \\ []),
    do: unwrap!(upload_file(store, path, local_path, opts))

  @doc """
  Copies an object from one store to another, of any backends, streaming: the download and the
  part uploads overlap, memory stays within the upload bound of `ObjectStoreX.Stream.upload/4`,
  and the digest is computed once in flight. The byte count is checked against the source's
  size and the destination's, and the upload is aborted on any failure.

  Returns `{:ok, summary}` with `%{etag:, version:, bytes:, parts:, duration_us:,
  throughput_mb_s:, digest:}`.

  ## Options

  The same as `ObjectStoreX.Stream.upload/4` for the destination (`:hash` defaults to
  `:sha256`; `false` computes no digest). `:on_progress` receives `%{bytes: copied, total: source_size}` at most every
  100 ms while the copy runs, and once at the end. And:

    * `:resume` - the source's ETag when an earlier transfer of this object was interrupted
      (`ObjectStoreX.Sync` records it). On S3, if that transfer's multipart upload is still in
      progress and the source still has this ETag, its complete parts (of this `:part_size`)
      are kept and the copy goes on from the byte after them; the summary's digest is then
      `nil`, since it would cover only what this call copied. If the source changed, the
      destination's uploads in progress are aborted and the copy starts over. Elsewhere the
      copy starts over.
  """
  @spec transfer(store(), path(), store(), path(), keyword()) :: {:ok, map()} | error()
  def transfer(source, source_path, store, path, opts \\ []),
    do: Upload.transfer(source, source_path, store, path, opts)

  @doc """
  Like `transfer/5`, but returns the summary or raises `ObjectStoreX.Error`.

  ## Options

  The same as `transfer/5`.
  """
  @spec transfer!(store(), path(), store(), path(), keyword()) :: map()
  def transfer!(source, source_path, store, path, opts \\ []),
    do: unwrap!(transfer(source, source_path, store, path, opts))

  @doc """
  Downloads an object into a local file with concurrent ranged GETs, each pinned to the
  object's ETag, written at their offsets into a temporary file beside `local_path`. The size is
  checked, then the file is renamed into place; on any failure nothing partial is left.
  Returns `{:ok, %ObjectStoreX.Meta{}}` of the object downloaded.

  ## Options

    * `:chunk_size` - bytes per ranged GET, default 8 MiB, at most 1 GiB
    * `:concurrency` - ranged GETs in flight, default 8, at most 1_000 (memory bound:
      `concurrency * chunk_size`)
    * `:hash` - `:sha256`, `:sha1`, `:md5` or `:crc32c`: the digest of the file written,
      computed natively before the file is renamed into place (the ranges arrive out of order,
      so the file is read back once, in order)
    * `:on_progress` - `fn %{bytes: written, total: size} -> any end`, called at most every
      100 ms while the file is written, and once at the end
    * `:on_complete` - `fn summary -> any end`, called once the file is in place with
      `%{bytes:, duration_us:, throughput_mb_s:, digest:}` (`digest` is nil without `:hash`)
    * `:timeout` - see "Common options" in the module doc
  """
  @spec download_file(store(), path(), Path.t(), keyword()) :: {:ok, Meta.t()} | error()
  def download_file(store, path, local_path, opts \\ []) do
    with {:ok, _, call} = args <- Args.download_file(store, path, local_path, opts),
         {:ok, {meta, bytes, us, digest}} <- Call.run(args, &Native.object_download_file/5) do
      if call.on_complete, do: call.on_complete.(Summary.download_file(bytes, us, digest))
      {:ok, meta}
    end
  end

  @doc """
  Like `download_file/4`, but returns the metadata or raises `ObjectStoreX.Error`.

  ## Options

  The same as `download_file/4`.
  """
  @spec download_file!(store(), path(), Path.t(), keyword()) :: Meta.t()
  def download_file!(store, path, local_path, opts \\ []),
    do: unwrap!(download_file(store, path, local_path, opts))

  # ---------------------------------------------------------------------------------------------
  # Presigned URLs

  @doc """
  Returns a presigned URL that lets anyone holding it perform `method` (`:get`, `:put`,
  `:delete`, `:head`, `:post`) on `path` for `expires_in` seconds (at most 604_800, 7 days),
  without credentials.

  Supported by S3, GCS and Azure stores; others return `:not_supported`. On GCS without a
  private key, signing asks Google's signing service.

  ## Options

  None, not even `:timeout`: signing is done locally, except on GCS without a private key,
  where the request to the signing service is bounded by the store's `:timeout` and `:retry`
  (see `new/2`). `expires_in` is at most 604_800 (7 days, the longest that S3 and GCS
  signatures allow).
  """
  @spec sign_url(store(), atom(), path(), pos_integer()) :: {:ok, String.t()} | error()
  def sign_url(store, method, path, expires_in),
    do: Call.run(Args.sign_url(store, method, path, expires_in), &Native.object_sign_url/5)

  @doc """
  Like `sign_url/4`, but returns the URL or raises `ObjectStoreX.Error`.

  ## Options

  None.
  """
  @spec sign_url!(store(), atom(), path(), pos_integer()) :: String.t()
  def sign_url!(store, method, path, expires_in),
    do: unwrap!(sign_url(store, method, path, expires_in))

  # ---------------------------------------------------------------------------------------------
  # Plumbing

  defp unwrap!(:ok), do: :ok
  defp unwrap!({:ok, value}), do: value
  defp unwrap!({:error, %Error{} = error}), do: raise(error)
end
