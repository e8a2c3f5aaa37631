defmodule ObjectStoreX.Upload do
  @moduledoc false
  # The one upload driver: `ObjectStoreX.Stream.upload/4`, `ObjectStoreX.UploadSink`,
  # `ObjectStoreX.upload_file/4` and `ObjectStoreX.transfer/5` validate their options here and
  # end through `completed/3` (telemetry, then `:on_complete`). The native half (upload.rs) cuts
  # parts, uploads them concurrently and aborts the multipart upload on every failure path; for
  # the memory store it joins the chunks into one PUT.

  alias ObjectStoreX.{Args, Call, Error, Garbage, Native, ProgressThrottle, Summary, Telemetry}

  @mib 1_048_576
  @min_part Args.min_part_size()
  @max_part Args.limit(:part_size)
  @max_parts 10_000

  @keys [
          :part_size,
          :max_concurrency,
          :size_hint,
          :hash,
          :on_progress,
          :on_complete,
          :timeout,
          :metadata,
          :tags
        ] ++ Args.attribute_opts()

  @doc """
  Part size and parts in flight per backend: large parts and little concurrency suit local
  disks; cloud stores want smaller parts, many in flight. The memory store has no parts (it
  joins the chunks once, natively) and ignores both.
  """
  @spec defaults(ObjectStoreX.Store.backend()) :: keyword()
  def defaults(backend) when backend in [:local, :memory],
    do: [part_size: 64 * @mib, max_concurrency: 2]

  def defaults(_backend), do: [part_size: 8 * @mib, max_concurrency: 8]

  @doc "Validates upload options; returns `{:ok, store_resource, path, opts_map, native_opts}`."
  @spec validate(term(), term(), term(), [atom()]) ::
          {:ok, reference(), String.t(), map(), map()} | {:error, Error.t()}
  def validate(store, path, opts, extra_keys \\ []) do
    with {:ok, resource} <- Args.store(store),
         {:ok, path} <- Args.path("path", path),
         {:ok, opts} <-
           Args.opts(opts, @keys ++ extra_keys, defaults(store.backend) ++ [timeout: :infinity]),
         # `hash: false` turns off a default digest (transfer/5's), which nil cannot: nil is
         # "not set".
         opts = if(opts[:hash] == false, do: Map.delete(opts, :hash), else: opts),
         :ok <- check(opts),
         {:ok, put} <- Args.put_options(Map.delete(opts, :mode)) do
      part_size = part_size(opts.part_size, opts[:size_hint])

      native = %{
        part_size: part_size,
        max_concurrency: opts.max_concurrency,
        hash: opts[:hash] && Atom.to_string(opts[:hash]),
        put: put,
        progress: opts[:on_progress] != nil,
        resume: opts[:resume]
      }

      {:ok, resource, path, Map.put(opts, :part_size, part_size), native}
    end
  end

  defp check(opts) do
    cond do
      not (is_integer(opts.part_size) and opts.part_size >= @min_part) ->
        Error.invalid(
          ":part_size must be an integer of at least #{@min_part} bytes (5 MiB), got: #{Args.brief(opts.part_size)}"
        )

      opts.part_size > @max_part ->
        Args.too_large(":part_size", opts.part_size, @max_part)

      not (is_integer(opts.max_concurrency) and opts.max_concurrency > 0) ->
        Error.invalid(
          ":max_concurrency must be a positive integer, got: #{Args.brief(opts.max_concurrency)}"
        )

      opts.max_concurrency > Args.limit(:max_concurrency) ->
        Args.too_large(":max_concurrency", opts.max_concurrency, Args.limit(:max_concurrency))

      not (is_nil(opts[:size_hint]) or (is_integer(opts[:size_hint]) and opts[:size_hint] >= 0)) ->
        Error.invalid(
          ":size_hint must be a non-negative integer, got: #{Args.brief(opts[:size_hint])}"
        )

      # More would need parts above the largest part size.
      opts[:size_hint] && opts[:size_hint] > @max_parts * @max_part ->
        Args.too_large(":size_hint (bytes)", opts[:size_hint], @max_parts * @max_part)

      opts[:hash] not in [nil | Args.hashes()] ->
        Args.hash(opts[:hash])

      not (is_nil(opts[:on_progress]) or is_function(opts[:on_progress], 1)) ->
        Error.invalid(":on_progress must be a function of arity 1")

      not (is_nil(opts[:on_complete]) or is_function(opts[:on_complete], 1)) ->
        Error.invalid(":on_complete must be a function of arity 1")

      true ->
        with {:ok, _} <- Args.timeout(opts), do: :ok
    end
  end

  # Raise the part size when the expected size would otherwise need more than 10,000 parts.
  defp part_size(part_size, nil), do: part_size

  defp part_size(part_size, size_hint) do
    needed = div(size_hint + @max_parts - 1, @max_parts)
    needed = div(needed + @mib - 1, @mib) * @mib
    max(part_size, needed)
  end

  # ---------------------------------------------------------------------------------------------
  # Natively driven: the native side reads the source (a file, another store's object).

  @doc "`ObjectStoreX.upload_file/4`."
  @spec file(term(), term(), term(), term()) :: {:ok, Summary.upload()} | {:error, Error.t()}
  def file(store, path, local_path, opts) do
    with {:ok, local_path} <- Args.path("local_path", local_path),
         {:ok, opts} <- Args.keyword(opts),
         {:ok, size} <- file_size(local_path),
         {:ok, resource, path, opts, native} <-
           validate(store, path, Keyword.put(opts, :size_hint, size)) do
      local_path = Path.expand(local_path)
      native(&Native.upload_file(&1, resource, path, local_path, native), store, path, opts)
    end
  end

  defp file_size(local_path) do
    case File.stat(local_path) do
      {:ok, %File.Stat{type: :regular, size: size}} ->
        {:ok, size}

      {:ok, _} ->
        Error.invalid("local_path #{inspect(local_path)} is not a regular file")

      {:error, reason} ->
        {:error,
         %Error{
           reason: :not_found,
           message: "cannot read #{inspect(local_path)}: #{:file.format_error(reason)}"
         }}
    end
  end

  @doc "`ObjectStoreX.transfer/5`: `:hash` defaults to `:sha256`."
  @spec transfer(term(), term(), term(), term(), term()) ::
          {:ok, Summary.upload()} | {:error, Error.t()}
  def transfer(source, source_path, store, path, opts) do
    with {:ok, source_resource} <- Args.store(source),
         {:ok, source_path} <- Args.path("source_path", source_path),
         {:ok, opts} <- Args.keyword(opts),
         {:ok, resource, path, opts, native} <-
           validate(store, path, Keyword.put_new(opts, :hash, :sha256), [:resume]),
         {:ok, _} <- Args.optional_header(":resume", opts[:resume]) do
      start = &Native.upload_transfer(&1, source_resource, source_path, resource, path, native)
      native(start, store, path, opts)
    end
  end

  # Progress comes from the native side; its last bytes may not have been reported, hence the
  # final report. Something raised, thrown or exited (by :on_progress) closes the span too.
  defp native(start, store, path, opts) do
    span = span(store, path)

    result =
      try do
        with {:ok, summary} <- Call.await(start, opts.timeout, opts[:on_progress]) do
          summary = Summary.upload(summary)

          if opts[:on_progress],
            do: opts.on_progress.(%{bytes: summary.bytes, total: summary.bytes})

          {:ok, summary}
        end
      catch
        kind, reason ->
          raised(span, kind, reason, __STACKTRACE__)
          :erlang.raise(kind, reason, __STACKTRACE__)
      end

    completed(result, span, opts)
  end

  # ---------------------------------------------------------------------------------------------
  # Driven from Elixir: the caller writes the bytes (an enumerable, the sink).

  @doc "`ObjectStoreX.Stream.upload/4`: uploads every element of `enumerable`."
  @spec enumerable(Enumerable.t(), term(), term(), term()) ::
          {:ok, Summary.upload()} | {:error, Error.t()}
  def enumerable(enumerable, store, path, opts) do
    with {:ok, resource, path, opts, native} <- validate(store, path, opts),
         {:ok, upload} <- start(resource, path, native),
         do: run(enumerable, upload, opts, span(store, path))
  end

  @doc "Starts an upload owned by the calling process."
  @spec start(reference(), String.t(), map()) :: {:ok, reference()} | {:error, Error.t()}
  def start(resource, path, native),
    do: Call.now(fn -> Native.upload_new(resource, path, native) end)

  # Returns once the native side has room for more, having freed the parts written meanwhile
  # on this scheduler: freed by the native threads, they would wait for the VM's allocators to
  # take them back, beyond the upload's memory bound on busy cores.
  defp send_iovec(upload, iovec, timeout) do
    with {:ok, _} <- Call.await(&Native.upload_write(&1, upload, iovec), timeout),
         do: Native.upload_release(upload)
  end

  @doc "Aborts the upload (idempotent); waits until the store has been told."
  @spec abort(reference()) :: :ok
  def abort(upload) do
    _ = Call.await(&Native.upload_abort(&1, upload), 60_000)
    :ok
  end

  # Aborts on any failure, re-raising source errors.
  defp run(enumerable, upload, opts, span) do
    progress = ProgressThrottle.new(opts[:on_progress], opts[:size_hint])

    written =
      try do
        Enum.reduce_while(enumerable, {:ok, progress, gathered(opts)}, fn chunk,
                                                                          {:ok, progress, g} ->
          case gather(upload, g, chunk, opts) do
            {:ok, g, size} -> {:cont, {:ok, ProgressThrottle.add(progress, size, false), g}}
            {:error, error} -> {:halt, {:error, error}}
          end
        end)
      catch
        kind, reason ->
          abort(upload)
          raised(span, kind, reason, __STACKTRACE__)
          :erlang.raise(kind, reason, __STACKTRACE__)
      end

    case written do
      {:ok, progress, gathered} -> complete(upload, gathered, progress, span, opts)
      {:error, error} -> failed(upload, error, span, opts)
    end
  end

  @doc """
  Sends what is still gathered and completes the upload, or aborts it; either way ends through
  `completed/3`.
  """
  @spec complete(reference(), map(), ProgressThrottle.t(), Telemetry.span(), map()) ::
          {:ok, Summary.upload()} | {:error, Error.t()}
  def complete(upload, gathered, progress, span, opts) do
    with :ok <- flush(upload, gathered, opts.timeout),
         {:ok, summary} <- Call.await(&Native.upload_finish(&1, upload), opts.timeout) do
      summary = Summary.upload(summary)
      ProgressThrottle.add(progress, 0, true)
      completed({:ok, summary}, span, opts)
    else
      {:error, error} -> failed(upload, error, span, opts)
    end
  end

  @doc "Aborts the upload after `error`, and ends through `completed/3`."
  @spec failed(reference(), Error.t(), Telemetry.span(), map()) :: {:error, Error.t()}
  def failed(upload, error, span, opts) do
    abort(upload)
    completed({:error, error}, span, opts)
  end

  # Chunks are gathered up to the next part boundary and handed over together: one native call
  # per part rather than one per chunk. What is held stays within the documented bound, since
  # the native side would hold those bytes as its unfinished part anyway.

  @doc "An empty gathering of chunks, for `gather/4`."
  @spec gathered(map()) :: map()
  def gathered(opts), do: %{iovecs: [], bytes: 0, need: opts.part_size}

  @doc """
  Adds a chunk, sending what is gathered once it reaches the next part boundary. Returns the
  new gathering and the chunk's size.
  """
  @spec gather(reference(), map(), term(), map()) ::
          {:ok, map(), non_neg_integer()} | {:error, Error.t()}
  def gather(upload, g, chunk, opts) do
    with {:ok, iovec} <- Args.iovec("upload chunks", chunk) do
      size = IO.iodata_length(iovec)
      iovecs = [iovec | g.iovecs]
      bytes = g.bytes + size

      if bytes >= g.need do
        # Computed first, so that nothing holds the chunks sent during the collection.
        need = opts.part_size - rem(bytes - g.need, opts.part_size)

        with :ok <- send_gathered(upload, iovecs, opts.timeout) do
          # The chunks just handed over are garbage here: a collection lets the native side
          # free each one as soon as its part is stored.
          Garbage.collect(opts.part_size)
          {:ok, %{iovecs: [], bytes: 0, need: need}, size}
        end
      else
        {:ok, %{g | iovecs: iovecs, bytes: bytes}, size}
      end
    end
  end

  defp flush(_upload, %{iovecs: []}, _timeout), do: :ok
  defp flush(upload, g, timeout), do: send_gathered(upload, g.iovecs, timeout)

  # The gathered iovecs are kept newest first.
  defp send_gathered(upload, iovecs, timeout),
    do: send_iovec(upload, :lists.append(Enum.reverse(iovecs)), timeout)

  # ---------------------------------------------------------------------------------------------
  # The end of every upload

  @event [:objectstorex, :upload]

  @doc "Emits the upload :start event; returns the span that `completed/3` closes."
  @spec span(ObjectStoreX.Store.t(), String.t()) :: Telemetry.span()
  def span(store, path), do: Telemetry.span_start(@event, %{path: path, backend: store.backend})

  @doc """
  Ends an upload: :stop for a summary, then `:on_complete` with it; :exception for an error.
  Returns `result`.
  """
  @spec completed({:ok, Summary.upload()} | {:error, Error.t()}, Telemetry.span(), map()) ::
          {:ok, Summary.upload()} | {:error, Error.t()}
  def completed({:ok, summary} = result, span, opts) do
    measurements = %{bytes: summary.bytes, parts: summary.parts}
    Telemetry.span_stop(span, measurements, %{digest: summary.digest})
    if opts[:on_complete], do: opts[:on_complete].(summary)
    result
  end

  def completed({:error, %Error{reason: reason}} = result, span, _opts) do
    Telemetry.span_exception(span, %{}, %{kind: :error, reason: reason})
    result
  end

  @doc "Emits :exception for something raised, thrown or exited while uploading."
  @spec raised(Telemetry.span(), atom(), term(), Exception.stacktrace()) :: :ok
  def raised(span, kind, reason, stacktrace) do
    reason = with %Error{reason: reason} <- reason, do: reason
    Telemetry.span_exception(span, %{}, %{kind: kind, reason: reason, stacktrace: stacktrace})
  end
end
