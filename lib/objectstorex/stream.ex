defmodule ObjectStoreX.Stream do
  @moduledoc """
  Lazy, demand-driven streams over objects and listings.

      ObjectStoreX.Stream.download(store, "large-file.bin")
      |> Stream.into(File.stream!("local-file.bin"))
      |> Stream.run()

  Every function of Elixir's `Stream` can be called through this module too, so code that does
  `alias ObjectStoreX.Stream` can keep writing `Stream.map/2`, `Stream.into/2`,
  `Stream.run/1` and the rest.

  ## Memory and flow control

  Nothing is requested until the stream is enumerated, and each enumeration starts afresh, in
  the process that enumerates it. The native side reads ahead by at most `:prefetch` chunks:
  it takes one credit before reading each chunk and the consumer gives one back for each chunk
  it takes (in batches of half the prefetch, so that the producer is woken once per batch). So,
  whatever the object size and however slow the consumer, one download holds at most

      (prefetch + 1) * chunk_size            # single request (default 3 * 2 MiB, local 16 * 2 MiB)
      (prefetch + concurrency + 1) * chunk_size   # with concurrency > 1

  plus a small constant; on the memory store, whose chunks are slices of the object it holds,
  nothing beyond that object. Chunk binaries are handed over without copying. A chunk of 1 MiB
  or more that the consumer is done with is freed before the next one is awaited, by a garbage
  collection of the consumer (skipped when its heap is larger than the chunk): left to the VM,
  which collects a process once the binaries it let go of outgrow a binary heap that grows with
  the binaries it keeps, up to 13 dead chunks were seen to outlive their use. Local reads use
  buffers from a process-wide pool of at most 64 MiB, reused once the BEAM frees a chunk.
  A chunk that malloc mapped on its own (from 4 MiB, see `OBJECTSTOREX_MALLOC_MMAP_THRESHOLD`
  in the README) is freed, once the BEAM's garbage collector lets it go, by a thread of its
  own (`objectstorex-gc`), not by the scheduler that collected it: unmapping a large buffer
  can take milliseconds while many streams run. At most 16 such chunks wait to be freed,
  process-wide; beyond that the scheduler frees the chunk itself.

  ## Cancellation

  Halting early (`Enum.take/2`, `Stream.take_while/2`), an exception in the consumer, or the
  consumer process exiting stops the native work promptly: the producer is aborted and its
  pending requests dropped. The stream removes every message it was sent from the consumer's
  mailbox before it returns.

  One exception: when one of several streams zipped with `Stream.zip/2` raises, Elixir 1.14
  does not close the others (it halts fresh enumerations of them instead), so a download among
  them is stopped only when its continuation is garbage-collected, and what it had read ahead
  (at most `:prefetch` chunks and one final message) stays in the mailbox.

  ## Errors

  Bad arguments and options raise `ObjectStoreX.Error` at once, when `download/3`, `lines/3`,
  `list_stream/2`, `get_many/3` or `put_many/3` is called, before anything is requested; the
  upload sink checks its options when collection starts. Failures of the store raise
  `ObjectStoreX.Error` during enumeration, except in `get_many/3` and `put_many/3`, which
  stream each object's failure as that object's result. A download is never assembled from two
  versions of an object: a resumed request must match the ETag of the first, and parallel
  ranged requests are pinned to it, so a change mid-download raises
  `%ObjectStoreX.Error{reason: :precondition_failed}`.
  """

  alias ObjectStoreX.{
    Args,
    Call,
    Error,
    Garbage,
    Native,
    ProgressThrottle,
    PutResult,
    Summary,
    Telemetry,
    Upload,
    UploadSink
  }

  @mib 1_048_576
  # The size from which a chunk or object that the consumer is done with is worth a collection.
  @collect_from @mib
  @download_defaults [
    chunk_size: 2 * @mib,
    prefetch: 2,
    concurrency: 1,
    timeout: 30_000,
    range: nil,
    hash: nil,
    verify: nil,
    on_progress: nil,
    on_complete: nil
  ]

  @doc """
  Streams an object as binary chunks.

  ## Options

    * `:chunk_size` - bytes per chunk, default 2 MiB, at most 1 GiB; every chunk but the last
      has exactly this size
    * `:prefetch` - chunks read ahead of the consumer, default 15 on local stores, 16 on the
      memory store (its chunks share the object it holds) and 2 elsewhere, at most 1_000 (see
      "Memory and flow control"); on a local store the reads ahead run in parallel
    * `:concurrency` - ranged GETs in flight for one object, default 1, at most 1_000; above
      1, chunks are fetched in parallel and delivered in order (needs an ETag or version on
      the object). A local store always reads the file it opened, its reads ahead in
      parallel within `:prefetch`, so this option does not apply there
    * `:range` - stream part of the object: `{first, last}` (inclusive), `{:offset, n}` or
      `{:suffix, n}`, with offsets at most 2^64 - 2
    * `:timeout` - ms to wait for each chunk (at most 4_294_967_295, or `:infinity`), default
      30_000; on expiry the download is
      cancelled and `%ObjectStoreX.Error{reason: :timeout}` raised. Network stalls are
      detected separately by the store's `:read_timeout`.
    * `:hash` - `:sha256`, `:sha1`, `:md5` or `:crc32c`, computed natively as the bytes flow;
      the hex digest is in the summary given to `:on_complete`
    * `:verify` - an expected hex digest (needs `:hash`); a mismatch raises
      `%ObjectStoreX.Error{reason: :checksum_mismatch}` after the last chunk
    * `:on_progress` - `fn %{bytes: done, total: total} -> any end`, called in the consuming
      process at most every 100 ms and once at the end
    * `:on_complete` - `fn summary -> any end`, called with `%{bytes: _, chunks: _,
      duration_us: _, throughput_mb_s: _, digest: hex | nil}` after the last chunk
  """
  @spec download(ObjectStoreX.Store.t(), String.t(), keyword()) :: Enumerable.t()
  def download(store, path, opts \\ []), do: download(store, path, opts, false)

  # With `gunzip`, the native side inflates the object (every gzip member) and sends the
  # inflated bytes, in pieces of at most 256 KiB.
  defp download(store, path, opts, gunzip) do
    {resource, opts} = validate_download!(store, path, opts)

    native = %{
      range: opts.range,
      chunk_size: opts.chunk_size,
      prefetch: opts.prefetch,
      concurrency: opts.concurrency,
      hash: opts.hash && Atom.to_string(opts.hash),
      gunzip: gunzip
    }

    meta = %{path: path, backend: store.backend}

    # The memory store's chunks are slices of the object it keeps: collecting frees nothing.
    consume(
      fn ref -> Native.stream_download(ref, resource, path, native) end,
      {opts.prefetch, opts.timeout, store.backend != :memory},
      %{
        opts: opts,
        meta: meta,
        progress: ProgressThrottle.new(opts.on_progress),
        span: nil,
        gunzip: gunzip
      },
      &download_event/2
    )
  end

  # Most of a local read's cost is the copy out of the page cache, and a read waits for a
  # credit to come back from the consumer: within the same bound, many smaller reads keep both
  # cores copying better than a few large ones (1 GiB cached, a fresh VM each, medians of 7:
  # 5.6 GB/s at 16 * 2 MiB, 4.5 at 4 * 8 MiB, cp 6.0). The memory store's chunks are slices
  # of the object it already holds, so reading ahead costs no memory there.
  defp backend_defaults(%ObjectStoreX.Store{backend: :local}, defaults),
    do: Keyword.put(defaults, :prefetch, 15)

  defp backend_defaults(%ObjectStoreX.Store{backend: :memory}, defaults),
    do: Keyword.put(defaults, :prefetch, 16)

  defp backend_defaults(_store, defaults), do: defaults

  defp validate_download!(store, path, opts) do
    result =
      with {:ok, resource} <- Args.store(store),
           {:ok, path} <- Args.path("path", path),
           defaults = backend_defaults(store, @download_defaults),
           {:ok, opts} <- Args.opts(opts, Keyword.keys(@download_defaults), defaults),
           :ok <- Args.positive_integers(opts, [:chunk_size, :prefetch, :concurrency]),
           {:ok, _} <- Args.timeout(opts),
           {:ok, range} <- Args.range(":range", opts.range),
           :ok <- check_hash(opts),
           :ok <- Args.optional_fun(opts, :on_progress, 1),
           :ok <- Args.optional_fun(opts, :on_complete, 1) do
        {:ok, resource, path, %{opts | range: range}}
      end

    case result do
      {:ok, resource, _path, opts} -> {resource, opts}
      {:error, error} -> raise error
    end
  end

  # Each chunk is one message: nothing to emit before the next.
  defp download_event(:next, _state), do: nil

  # Enumeration has begun and the request is on its way.
  defp download_event(:opened, state),
    do: {[], %{state | span: Telemetry.span_start([:objectstorex, :download], state.meta)}}

  # The store has answered: the object's size is known.
  # Inflated, the size is not known in advance: progress is then reported without a total.
  defp download_event({:start, _meta, _total}, %{gunzip: true} = state), do: {[], state}

  defp download_event({:start, _meta, total}, state),
    do: {[], %{state | progress: %{state.progress | total: total}}}

  defp download_event({:data, chunk}, state) do
    {[chunk], %{state | progress: ProgressThrottle.add(state.progress, byte_size(chunk), false)}}
  end

  defp download_event({:done, done}, state) do
    ProgressThrottle.add(state.progress, 0, true)
    %{bytes: bytes, chunks: chunks, digest: digest} = summary = Summary.download(done)

    if state.opts.verify && String.downcase(state.opts.verify) != digest do
      error = %Error{
        reason: :checksum_mismatch,
        message:
          "#{state.opts.hash} digest #{digest} does not match the expected #{state.opts.verify}"
      }

      exception(state, error)
    end

    Telemetry.span_stop(state.span, %{bytes: bytes, chunks: chunks}, %{digest: digest})

    if state.opts.on_complete, do: state.opts.on_complete.(summary)
    {[], state}
  end

  defp download_event({:error, error}, state), do: exception(state, error)

  defp exception(state, error) do
    Telemetry.span_exception(state.span, %{}, %{reason: error.reason})
    raise error
  end

  defp check_hash(%{hash: nil, verify: nil}), do: :ok

  defp check_hash(%{hash: nil}),
    do: Error.invalid(":verify needs :hash to say which digest to compute")

  defp check_hash(%{hash: h, verify: v}) do
    with {:ok, _} <- Args.hash(h) do
      cond do
        is_nil(v) -> :ok
        is_binary(v) -> with {:ok, _} <- Args.utf8(":verify", v), do: :ok
        true -> Error.invalid(":verify must be a hex digest string")
      end
    end
  end

  @doc """
  Uploads an enumerable of binaries (or iodata) of any sizes as one object, using a multipart
  upload with parts uploaded concurrently. Returns `:ok` or `{:error, %ObjectStoreX.Error{}}`.

      File.stream!("large-file.bin", [], 10_485_760)
      |> ObjectStoreX.Stream.upload(store, "remote-file.bin")

  The input is cut into equal parts of `:part_size` bytes (the last may be shorter) without
  copying it; an input of at most one part is sent as a single PUT.

  ## Memory

  While `:max_concurrency` parts are in flight the enumerable is not read further, so one
  upload holds at most `(max_concurrency + 1) * part_size` bytes plus the chunk being written,
  whatever the input size (defaults: 9 * 8 MiB on cloud stores, 3 * 64 MiB on local stores).
  Chunks made by the calling process are freed once their part is stored, not at the process's
  next garbage collection: after handing each part over, the upload collects the calling
  process's garbage, unless its heap is larger than a part (the collection would then cost more
  than moving the part).

  The memory store keeps its objects in the VM's memory, so it has no parts: the chunks
  written are kept, without copying, until the upload completes, and are then joined once into
  the stored object (on several threads when it is large), as a single PUT. `:part_size` and
  `:max_concurrency` do not apply to it, and the upload reports one part.

  ## Nothing left behind

  The multipart upload is aborted when the source raises (the exception is then re-raised),
  when a part or the completion fails after retries (`{:error, _}` is returned), when the
  calling process dies, and when the upload is garbage-collected unfinished.

  ## Telemetry

  Emits `[:objectstorex, :upload, :start | :stop | :exception]`, as do the upload sink,
  `ObjectStoreX.upload_file/4` and `ObjectStoreX.transfer/5`; see `ObjectStoreX.Telemetry`.

  ## Options

    * `:part_size` - bytes per part, at least 5 MiB and at most 5 GiB (S3's limits); default
      8 MiB on S3, GCS and Azure and 64 MiB on local stores
    * `:max_concurrency` - parts in flight, default 8 (2 on local stores), at most 1_000
    * `:size_hint` - the expected total size; raises `:part_size` so that no object needs
      more than 10,000 parts, so at most 10,000 parts of 5 GiB (53_687_091_200_000 bytes)
    * `:hash` - `:sha256`, `:sha1`, `:md5` or `:crc32c`, computed natively as data flows;
      `false` (the default) computes none
    * `:on_progress` - `fn %{bytes: sent, total: size_hint} -> any end`, at most every 100 ms
    * `:on_complete` - `fn summary -> any end` with `%{etag:, version:, bytes:, parts:,
      duration_us:, throughput_mb_s:, digest:}`; the way to get the ETag and digest without
      changing the return value
    * `:content_type`, `:content_encoding`, `:content_disposition`, `:content_language`,
      `:cache_control`, `:metadata`, `:tags` - as for `ObjectStoreX.put/4`
    * `:timeout` - ms to wait for each write or the completion (at most 4_294_967_295),
      default `:infinity`
  """
  @spec upload(Enumerable.t(), ObjectStoreX.Store.t(), String.t(), keyword()) ::
          :ok | {:error, Error.t()}
  def upload(enumerable, store, path, opts \\ []) do
    with :ok <- enumerable(enumerable),
         {:ok, _summary} <- Upload.enumerable(enumerable, store, path, opts),
         do: :ok
  end

  defp enumerable(name \\ "the source", enumerable)

  # An improper list has an Enumerable implementation, which fails on its tail.
  defp enumerable(name, list) when is_list(list) do
    if proper_list?(list),
      do: :ok,
      else: Error.invalid("#{name} must be an Enumerable, got an improper list")
  end

  # Enumerable takes every function; only those of arity 2 (a stream's own form) enumerate.
  defp enumerable(name, fun) when is_function(fun) and not is_function(fun, 2),
    do: Error.invalid("#{name} must be an Enumerable, got: #{Args.brief(fun)}")

  defp enumerable(name, enumerable) do
    if Enumerable.impl_for(enumerable),
      do: :ok,
      else: Error.invalid("#{name} must be an Enumerable, got: #{Args.brief(enumerable)}")
  end

  defp proper_list?([]), do: true
  defp proper_list?([_ | tail]), do: proper_list?(tail)
  defp proper_list?(_tail), do: false

  @doc """
  A `Collectable` that uploads what is collected into it, for `Enum.into/2` and
  `Stream.into/2`. See `ObjectStoreX.UploadSink`.

  ## Options

  The same as `upload/4`; they are checked when collection starts.
  """
  @spec upload_sink(ObjectStoreX.Store.t(), String.t(), keyword()) :: UploadSink.t()
  def upload_sink(store, path, opts \\ []), do: %UploadSink{store: store, path: path, opts: opts}

  @doc """
  Fetches many objects, `:max_concurrency` at a time, and streams `{path, result}` for each
  path of `paths` (any enumerable, read lazily), where `result` is what `ObjectStoreX.get/3`
  answers: `{:ok, data, meta}` or `{:error, %ObjectStoreX.Error{}}`. One object failing never
  stops the others.

      iex> store = ObjectStoreX.new!(:memory)
      iex> :ok = ObjectStoreX.put(store, "a", "1")
      iex> ObjectStoreX.Stream.get_many(store, ["a", "b"])
      ...> |> Enum.map(fn {path, result} -> {path, elem(result, 0)} end)
      [{"a", :ok}, {"b", :error}]

  It does what `Task.async_stream/3` of `ObjectStoreX.get/3` does, at a fraction of the cost
  per object: the requests run natively, side by side, and the results reach the consumer in
  batches, without a process or a reply per object. Use it to read many small objects.

  At most `:max_concurrency` objects are requested at once. A quarter as many more (rounded
  up) are taken from `paths` ahead of them and start as soon as others finish, without waiting
  for the consumer: so a finished object can wait for others to share its message, which
  spares the VM a wake-up per object, while the queued ones take its place. It waits a quarter
  of the time an object takes, at most 20 ms, and only while objects are queued; otherwise, when
  more than 32 objects are in flight and they finish less than a millisecond apart, 2 ms or a
  sixteenth of the time an object takes, whichever is less. The native timer's whole
  milliseconds may lengthen either by up to 1 ms.

  At most `:max_concurrency` and a quarter more objects are requested or held for the consumer
  at once (20 for the default 16), so memory is bounded by that many times the size of the
  largest object (objects are not chunked; stream large ones with `download/3`). Halting early,
  an exception in the consumer or its exit cancels the requests still running, and removes
  their messages from the mailbox.

  ## Options

    * `:max_concurrency` - objects requested at once, default 16, at most 1_000
    * `:ordered` - results in the order of `paths` (default `true`); `false` streams each as
      soon as it arrives, so that one slow object does not hold back the others
    * `:timeout` - ms each object may take (at most 4_294_967_295, or `:infinity`, the
      default); an object that takes longer gets `{:error, %ObjectStoreX.Error{reason:
      :timeout}}`
    * `:range`, `:if_modified_since`, `:if_unmodified_since`, `:head` - as for
      `ObjectStoreX.get/3`, applied to every object

  A path that is not a string gets its own `{:error, %ObjectStoreX.Error{reason:
  :invalid_argument}}`, one that is not a valid path `:invalid_path`. Bad options raise
  `ObjectStoreX.Error` when `get_many/3` is called.
  """
  @spec get_many(ObjectStoreX.Store.t(), Enumerable.t(), keyword()) :: Enumerable.t()
  def get_many(store, paths, opts \\ []),
    do: many(:get, "paths", paths, Args.get_many(store, opts), &Native.stream_get_many/5)

  @doc """
  Writes many objects, `:max_concurrency` at a time, and streams `{path, result}` for each
  `{path, data}` of `entries` (any enumerable, read lazily; `data` a binary or iodata), where
  `result` is what `ObjectStoreX.put_with_result/4` answers: `{:ok, %ObjectStoreX.PutResult{}}`
  or `{:error, %ObjectStoreX.Error{}}`. One object failing never stops the others. Nothing is
  written until the stream is enumerated.

      iex> store = ObjectStoreX.new!(:memory)
      iex> ObjectStoreX.Stream.put_many(store, [{"a", "1"}, {"b", ["2", "3"]}])
      ...> |> Enum.map(fn {path, {:ok, %ObjectStoreX.PutResult{}}} -> path end)
      ["a", "b"]
      iex> ObjectStoreX.get!(store, "b")
      "23"

  It does what `Task.async_stream/3` of `ObjectStoreX.put/4` does, at a fraction of the cost
  per object, as `get_many/3` does for reads. Each object is written whole, in one request;
  upload large ones with `upload/4`.

  At most `:max_concurrency` objects are written at once, and, as for reads, a quarter as many
  more (rounded up) are taken ahead of them to start as soon as others finish; so the data held
  is at most `:max_concurrency` and a quarter more objects' (the caller's binaries, not copied
  unless they are small) and the one `entries` is making. Objects of 1 MiB or more, once
  answered, are not left for the caller's next garbage collection: the stream collects after
  every `:max_concurrency` MiB of them. Halting early, an exception in the consumer or its exit
  cancels the writes still running: each of them is then either complete or not written at
  all, as with `put/4`.

  ## Options

    * `:max_concurrency` - objects written at once, default 16, at most 1_000
    * `:ordered` - results in the order of `entries` (default `true`), or as they complete
    * `:timeout` - ms each object may take (at most 4_294_967_295, or `:infinity`, the
      default); past it the object gets `{:error, %ObjectStoreX.Error{reason: :timeout}}`, and
      whether it was written is unknown, as for `put/4`
    * `:mode`, `:content_type`, `:content_encoding`, `:content_disposition`,
      `:content_language`, `:cache_control`, `:metadata`, `:tags` - as for
      `ObjectStoreX.put/4`, applied to every object (`mode: :create` makes each write fail
      with `:already_exists` where its object exists)

  An entry that is not `{path, data}` with a string path and a binary or iodata gets its own
  `{:error, %ObjectStoreX.Error{reason: :invalid_argument}}` (the entry itself standing for the
  path when it is not a pair), one whose path is not a valid path `:invalid_path`. Bad options
  raise `ObjectStoreX.Error` when `put_many/3` is called.
  """
  @spec put_many(ObjectStoreX.Store.t(), Enumerable.t(), keyword()) :: Enumerable.t()
  def put_many(store, entries, opts \\ []),
    do: many(:put, "entries", entries, Args.put_many(store, opts), &Native.stream_put_many/5)

  # ---------------------------------------------------------------------------------------------
  # The consumer side of get_many and put_many. Items are numbered as they are taken from the
  # source; `pending` holds the key (path) of every item taken and not yet emitted, `ready`
  # the results that arrived and wait for their turn (all of them when unordered).

  defp many(kind, name, source, args, nif) do
    with :ok <- enumerable(name, source),
         {:ok, resource, native, timeout, max, ordered} <- args do
      many_resource(kind, source, &nif.(&1, resource, native, max, timeout), max, ordered)
    else
      {:error, error} -> raise error
    end
  end

  defp many_resource(kind, source, start, max, ordered) do
    Elixir.Stream.resource(
      fn ->
        ref = make_ref()

        %{
          ref: ref,
          stream: start!(start, ref),
          kind: kind,
          source: &Enumerable.reduce(source, &1, fn item, _ -> {:suspend, item} end),
          started: false,
          index: 0,
          pending: %{},
          ready: %{},
          next: 0,
          max: max,
          held: max + div(max + 3, 4),
          ordered: ordered,
          collect: 0,
          large: %{}
        }
      end,
      &next_many/1,
      &close_many/1
    )
  end

  # Takes items from the source until `held` are pending, pushes them in one call, then emits
  # what is ready, or waits for more. The native side runs `max` at a time and queues the
  # rest, `held` being a quarter more (rounded up): a finished object's place is taken at
  # once, so the native side can hold results back to send several in one message, which
  # spares this process and its scheduler a wake-up per object.
  defp next_many(s) do
    # Written objects just answered are freed before new ones are taken, not joined by them.
    s = if s.kind == :put, do: collect_many(s), else: s
    {jobs, s} = take_items(s, [])
    if jobs != [], do: Native.stream_many_push(s.stream, Enum.reverse(jobs))

    case emit_ready(s) do
      {[], %{pending: pending, source: :done} = s} when pending == %{} ->
        finish_many(s)

      {[], s} ->
        s |> collect_many() |> receive_many()

      {items, s} ->
        {items, %{s | collect: s.collect + large_data(items)}}
    end
  end

  # As for downloads: objects of 1 MiB or more that the consumer is done with are freed, read
  # ones before more are awaited, written ones (once answered) before more are taken. The
  # native side lets go of a written object's binaries at the next push. Written ones wait
  # until `max` MiB of them are answered: a collection costs the VM a wake-up or two, more than
  # a 1 MiB write costs it, and their binaries are often shared, so that it frees nothing.
  defp collect_many(%{collect: 0} = s), do: s
  defp collect_many(%{kind: :put, collect: c, max: max} = s) when c < max * @collect_from, do: s

  defp collect_many(s) do
    Garbage.collect(s.collect)
    %{s | collect: 0}
  end

  defp large_data(items) do
    Enum.reduce(items, 0, fn
      {_path, {:ok, data, _meta}}, sum when byte_size(data) >= @collect_from ->
        sum + byte_size(data)

      _item, sum ->
        sum
    end)
  end

  defp take_items(%{source: :done} = s, jobs), do: {jobs, s}

  defp take_items(s, jobs) when map_size(s.pending) >= s.held, do: {jobs, s}

  defp take_items(%{index: index} = s, jobs) do
    case s.source.({:cont, nil}) do
      {:suspended, item, source} ->
        {key, job} = job(s.kind, index, item)
        pending = Map.put(s.pending, index, key)
        s = %{s | source: source, started: true, index: index + 1, pending: pending}

        case job do
          {:ok, job} -> take_items(large_job(s, job), [job | jobs])
          {:error, error} -> take_items(%{s | ready: Map.put(s.ready, index, error)}, jobs)
        end

      _done_or_halted ->
        {jobs, %{s | source: :done}}
    end
  end

  # Notes the size of a written object of `@collect_from` bytes or more, to be collected once
  # it is answered.
  defp large_job(s, {index, _path, iovec}) do
    case :erlang.iolist_size(iovec) do
      size when size >= @collect_from -> %{s | large: Map.put(s.large, index, size)}
      _small -> s
    end
  end

  defp large_job(s, _read), do: s

  # `{key, {:ok, job} | {:error, error}}`: what the item is known by, and what the producer
  # is handed for it.
  defp job(:get, index, path) do
    case Args.path("path", path) do
      {:ok, path} -> {path, {:ok, {index, path}}}
      error -> {path, error}
    end
  end

  defp job(:put, index, {path, data}) do
    result =
      with {:ok, path} <- Args.path("path", path),
           {:ok, iovec} <- Args.iovec("data", data),
           do: {:ok, {index, path, iovec}}

    {path, result}
  end

  defp job(:put, _index, other) do
    {other, Error.invalid("each entry must be {path, data}, got: #{Args.brief(other)}")}
  end

  defp receive_many(%{ref: ref} = s) do
    receive do
      {^ref, {:got, got}} ->
        ready = Enum.reduce(got, s.ready, &ready(s.kind, &1, &2))
        next_many(answered(%{s | ready: ready}, got))

      {^ref, {:error, native}} ->
        finished(ref)
        raise Call.error(native)
    end
  end

  # Large written objects just answered are counted for collection; reads have none.
  defp answered(%{large: large} = s, _got) when large == %{}, do: s

  defp answered(s, got) do
    {written, large} = Map.split(s.large, Enum.map(got, &elem(&1, 0)))
    %{s | large: large, collect: s.collect + Enum.sum(Map.values(written))}
  end

  defp ready(:get, {index, {:ok, {data, meta}}}, ready),
    do: Map.put(ready, index, {:ok, data, meta})

  defp ready(:put, {index, {:ok, {etag, version}}}, ready),
    do: Map.put(ready, index, {:ok, %PutResult{etag: etag, version: version}})

  defp ready(_kind, {index, {:error, native}}, ready),
    do: Map.put(ready, index, Call.error(native))

  # In order: the run of results from the next index on. Otherwise: all that arrived.
  defp emit_ready(%{ordered: true} = s), do: emit_in_order(s, [])

  defp emit_ready(s) do
    items =
      Enum.map(s.ready, fn {index, result} -> {Map.fetch!(s.pending, index), result(result)} end)

    {items, %{s | pending: Map.drop(s.pending, Map.keys(s.ready)), ready: %{}}}
  end

  defp emit_in_order(%{next: next} = s, items) do
    case Map.pop(s.ready, next) do
      {nil, _} ->
        {Enum.reverse(items), s}

      {result, ready} ->
        {key, pending} = Map.pop!(s.pending, next)
        s = %{s | ready: ready, pending: pending, next: next + 1}
        emit_in_order(s, [{key, result(result)} | items])
    end
  end

  defp result(%Error{} = error), do: {:error, error}
  defp result(ok), do: ok

  defp finish_many(%{ref: ref} = s) do
    Native.stream_many_close(s.stream)

    receive do
      {^ref, {:done, _count}} ->
        finished(ref)
        {:halt, s}

      {^ref, {:error, native}} ->
        finished(ref)
        raise Call.error(native)
    end
  end

  # The native side first: a source that raises on halt must not leave the producer running.
  # Only a suspended source is halted (one that has not started has nothing to close, and one
  # that raised may raise again).
  defp close_many(s) do
    close(s)
    if s.started and is_function(s.source), do: s.source.({:halt, nil})
  end

  @list_defaults [prefix: nil, offset: nil, page_size: 1000, prefetch: 2, timeout: 30_000]

  @doc """
  Streams the metadata (`%ObjectStoreX.Meta{}`) of every object under a prefix, recursively.
  Pages are fetched lazily: `Stream.take(10)` stops the listing after the first page, and memory
  does not grow with the number of objects. The order is not guaranteed.

  ## Options

    * `:prefix` - list under this path
    * `:offset` - only objects whose path sorts after this one
    * `:page_size` - objects per message from the native side, default 1000, at most
      100_000
    * `:prefetch` - pages read ahead of the consumer, default 2, at most 1_000
    * `:timeout` - ms to wait for each page (at most 4_294_967_295, or `:infinity`), default
      30_000
  """
  @spec list_stream(ObjectStoreX.Store.t(), keyword()) :: Enumerable.t()
  def list_stream(store, opts \\ []) do
    result =
      with {:ok, resource} <- Args.store(store),
           {:ok, opts} <- Args.opts(opts, Keyword.keys(@list_defaults), @list_defaults),
           {:ok, prefix} <- Args.optional_path(":prefix", opts.prefix),
           {:ok, offset} <- Args.optional_path(":offset", opts.offset),
           :ok <- Args.positive_integers(opts, [:page_size, :prefetch]),
           {:ok, timeout} <- Args.timeout(opts) do
        {:ok, resource, prefix && String.trim(prefix, "/"), offset, opts, timeout}
      end

    case result do
      {:ok, resource, prefix, offset, opts, timeout} ->
        consume(
          fn ref ->
            Native.stream_list(ref, resource, prefix, offset, opts.page_size, opts.prefetch)
          end,
          {opts.prefetch, timeout, false},
          nil,
          &list_event/2
        )

      {:error, error} ->
        raise error
    end
  end

  # The native side sends each page as listed, and this process builds its terms a slice at
  # a time, on its own heap (see `ListPage` in stream.rs). The state is the page being built.
  defp list_event(:opened, nil), do: {[], nil}
  defp list_event(:next, nil), do: nil
  defp list_event({:data, page}, nil), do: {[], page}
  defp list_event({:done, _count}, nil), do: {[], nil}
  defp list_event({:error, error}, _page), do: raise(error)

  defp list_event(:next, page) do
    case Native.stream_list_page(page) do
      [] -> {[], nil}
      metas -> {metas, page}
    end
  end

  @lines_defaults [decompress: nil, max_line_length: 1_048_576]

  @doc """
  Streams the lines of a text object, without their line terminators (`"\\n"` or `"\\r\\n"`).
  Lines that straddle two chunks are joined correctly; a final line without a newline is
  emitted too.

  ## Options

    * `:decompress` - `:gzip` to inflate a gzip-compressed object as it streams, natively:
      every member of a multi-member file (`cat a.gz b.gz`), each checked against its CRC-32
      and length; a truncated or corrupt stream raises `%ObjectStoreX.Error{}`. Memory is
      `prefetch + 1` inflated pieces of at most 256 KiB, one compressed chunk and the line
      being assembled. `:on_progress` then reports inflated bytes with `total: nil`; `:hash`
      and the `:on_complete` summary are of the compressed object
    * `:max_line_length` - bytes, default 1 MiB; a longer line raises
      `%ObjectStoreX.Error{reason: :line_too_long}` instead of growing memory without bound
    * every option of `download/3` (`:chunk_size`, `:prefetch`, `:timeout`, `:range`, ...)
  """
  @spec lines(ObjectStoreX.Store.t(), String.t(), keyword()) :: Enumerable.t()
  def lines(store, path, opts \\ []) do
    opts =
      case Args.keyword(opts) do
        {:ok, opts} -> opts
        {:error, error} -> raise error
      end

    {line_opts, download_opts} = Keyword.split(opts, Keyword.keys(@lines_defaults))
    line_opts = Keyword.merge(@lines_defaults, line_opts)
    max = line_opts[:max_line_length]

    unless is_integer(max) and max > 0,
      do:
        raise(%Error{
          reason: :invalid_argument,
          message: ":max_line_length must be a positive integer"
        })

    unless line_opts[:decompress] in [nil, :gzip],
      do: raise(%Error{reason: :invalid_argument, message: ":decompress must be :gzip or nil"})

    chunks = download(store, path, download_opts, line_opts[:decompress] == :gzip)

    Elixir.Stream.transform(
      chunks,
      fn -> "" end,
      fn chunk, carry -> split_lines(carry <> chunk, max) end,
      fn
        "" -> {[], ""}
        carry -> {[strip_cr(carry)], ""}
      end,
      fn _ -> :ok end
    )
  end

  defp split_lines(data, max) do
    [carry | lines] = data |> :binary.split("\n", [:global]) |> Enum.reverse()
    lines = lines |> Enum.reverse() |> Enum.map(&strip_cr/1)

    # The unfinished line is checked too, so memory stays bounded before a newline arrives.
    if Enum.any?([carry | lines], &(byte_size(&1) > max)) do
      raise %Error{
        reason: :line_too_long,
        message: "a line is longer than :max_line_length (#{max} bytes)"
      }
    end

    {lines, carry}
  end

  defp strip_cr(line) do
    size = byte_size(line) - 1

    case line do
      <<body::binary-size(size), "\r">> -> body
      _ -> line
    end
  end

  # ---------------------------------------------------------------------------------------------
  # The consumer side of the credit protocol (see the moduledoc).
  #
  # `handle` turns each event into `{items, state}`. It is also called with `:next` before
  # every receive: it returns nil, or `{items, state}` when what it was last sent has more to
  # emit.

  # Credits go back in batches of half the prefetch: the producer then waits, and is woken,
  # once per batch rather than once per item, and never has more than `prefetch` out.
  # `collect?` says whether chunks of `@collect_from` bytes or more may hold memory of their own
  # (see `collect/1`).
  defp consume(start, {prefetch, timeout, collect?}, initial, handle) do
    Elixir.Stream.resource(
      fn ->
        %{
          ref: nil,
          stream: nil,
          start: start,
          state: initial,
          unacked: 0,
          batch: div(prefetch, 2),
          collect?: collect?,
          collect: nil
        }
      end,
      fn
        %{stream: nil} = s ->
          ref = make_ref()
          stream = start!(s.start, ref)
          {items, state} = handle.(:opened, s.state)
          {items, %{s | ref: ref, stream: stream, state: state}}

        s ->
          case handle.(:next, s.state) do
            nil -> s |> collect() |> receive_event(timeout, handle)
            {items, state} -> {items, %{s | state: state}}
          end
      end,
      &close/1
    )
  end

  defp start!(start, ref) do
    start.(ref)
  rescue
    e in ArgumentError -> reraise Call.error(Call.badarg(e)), __STACKTRACE__
  end

  defp receive_event(%{ref: ref, stream: stream} = s, timeout, handle) do
    receive do
      {^ref, {:data, data} = event} ->
        {items, state} = handle.(event, s.state)
        unacked = ack(stream, s.unacked + 1, s.batch)
        {items, %{s | state: state, unacked: unacked, collect: large(s.collect?, data)}}

      {^ref, {:start, _, _} = event} ->
        {items, state} = handle.(event, s.state)
        {items, %{s | state: state}}

      {^ref, {:done, _} = event} ->
        finished(ref)
        {_no_items, state} = handle.(event, s.state)
        {:halt, %{s | state: state}}

      {^ref, {:error, native}} ->
        finished(ref)
        handle.({:error, Call.error(native)}, s.state)
    after
      timeout ->
        close(s)
        message = "no data arrived within #{timeout} ms"
        handle.({:error, %Error{reason: :timeout, message: message, retryable: true}}, s.state)
    end
  end

  # A chunk the consumer is done with is freed by a collection before the next is awaited:
  # `collect` holds the size of the last chunk when it was large enough to be worth one.

  defp collect(%{collect: nil} = s), do: s

  defp collect(%{collect: bytes} = s) do
    Garbage.collect(bytes)
    %{s | collect: nil}
  end

  defp large(true, data) when is_binary(data) and byte_size(data) >= @collect_from,
    do: byte_size(data)

  defp large(_collect?, _data), do: nil

  defp ack(stream, unacked, batch) when unacked >= batch do
    Native.stream_ack(stream, unacked)
    0
  end

  defp ack(_stream, unacked, _batch), do: unacked

  defp finished(ref), do: Process.put({__MODULE__, ref}, :finished)

  # Runs on completion, early halt and exceptions, and may run twice for one stream: a timeout
  # closes before raising, and Elixir's Stream.transform/5 calls its source's after-callback
  # again when halted in its last function. Unless the terminal message has been taken, the
  # producer is cancelled and its messages drained up to the terminal one: waited for while
  # the producer was still running, taken from the mailbox if it had already finished.
  defp close(%{stream: nil}), do: :ok

  defp close(%{ref: ref, stream: stream}) do
    running? = Native.stream_cancel(stream) == :running

    case Process.delete({__MODULE__, ref}) do
      :finished -> :ok
      nil -> drain(ref, if(running?, do: 30_000, else: 0))
    end
  end

  defp drain(ref, wait) do
    receive do
      {^ref, {:data, _}} -> drain(ref, wait)
      {^ref, {:start, _, _}} -> drain(ref, wait)
      {^ref, {:got, _}} -> drain(ref, wait)
      {^ref, _terminal} -> :ok
    after
      wait -> :ok
    end
  end

  # ---------------------------------------------------------------------------------------------
  # Elixir's Stream, through this module
  #
  # Code that does `alias ObjectStoreX.Stream` shadows Elixir's `Stream`, so every function of
  # it is delegated from here; the list is read at compile time and follows the Elixir version.
  # Struct functions are not delegated (this module is no struct), nor anything defined above.

  @deprecated_in_stream Map.new(Elixir.Stream.__info__(:deprecated))

  for {name, arity} <- Elixir.Stream.__info__(:functions),
      not String.starts_with?(Atom.to_string(name), "__"),
      not Module.defines?(__MODULE__, {name, arity}) do
    args = Macro.generate_arguments(arity, __MODULE__)

    case @deprecated_in_stream do
      %{{^name, ^arity} => message} ->
        # Called through apply/3 so that this module compiles without the deprecation
        # warning, which its callers still get.
        @deprecated message
        @doc false
        def unquote(name)(unquote_splicing(args)),
          do: apply(Elixir.Stream, unquote(name), unquote(args))

      _ ->
        @doc """
        Same as `Stream.#{name}/#{arity}`, for code that aliases this module as `Stream`.

        ## Options

        Those of `Stream.#{name}/#{arity}`.
        """
        @spec unquote(name)(unquote_splicing(List.duplicate(quote(do: term()), arity))) ::
                term()
        defdelegate unquote(name)(unquote_splicing(args)), to: Elixir.Stream
    end
  end
end
