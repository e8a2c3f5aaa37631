defmodule ObjectStoreX.Upload do
  @moduledoc false
  # The Elixir half of streaming multipart uploads, shared by `ObjectStoreX.Stream.upload/4`,
  # `ObjectStoreX.UploadSink`, `ObjectStoreX.upload_file/4` and `ObjectStoreX.transfer/5`.
  # The native half (upload.rs) cuts parts, uploads them concurrently and aborts the multipart
  # upload on every failure path; for the memory store it joins the chunks into one PUT.

  alias ObjectStoreX.{Args, Error, Native, Progress, Telemetry}

  @mib 1_048_576
  @min_part 5 * @mib
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

  @hashes [:sha256, :sha1, :md5, :crc32c]

  @doc "Option keys accepted by uploads."
  def keys, do: @keys

  @doc """
  Part size and parts in flight per backend: large parts and little concurrency suit local
  disks; cloud stores want smaller parts, many in flight. The memory store has no parts (it
  joins the chunks once, natively) and ignores both.
  """
  def defaults(backend) when backend in [:local, :memory],
    do: [part_size: 64 * @mib, max_concurrency: 2]

  def defaults(_backend), do: [part_size: 8 * @mib, max_concurrency: 8]

  @doc "Validates upload options; returns `{:ok, store_resource, opts_map, native_opts}`."
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
        progress: opts[:on_progress] != nil
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

      not (is_nil(opts[:hash]) or opts[:hash] in @hashes) ->
        Error.invalid(":hash must be one of #{inspect(@hashes)}, got: #{Args.brief(opts[:hash])}")

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

  @doc "Starts an upload owned by the calling process."
  def start(resource, path, native) do
    case Native.upload_new(resource, path, native) do
      {:ok, upload} -> {:ok, upload}
      {:error, native_error} -> {:error, Error.from_native(native_error)}
    end
  rescue
    e in ArgumentError -> {:error, Error.from_native(ObjectStoreX.Call.badarg(e))}
  end

  # Returns once the native side has room for more.
  defp send_iovec(upload, iovec, timeout) do
    case ObjectStoreX.Call.await(&Native.upload_write(&1, upload, iovec), timeout) do
      {:ok, _} -> :ok
      {:error, native_error} -> {:error, Error.from_native(native_error)}
    end
  end

  @doc "Completes the upload; returns the summary map."
  def finish(upload, timeout) do
    case ObjectStoreX.Call.await(&Native.upload_finish(&1, upload), timeout) do
      {:ok, summary} -> {:ok, summary(summary)}
      {:error, native_error} -> {:error, Error.from_native(native_error)}
    end
  end

  @doc "Aborts the upload (idempotent); waits until the store has been told."
  def abort(upload) do
    _ = ObjectStoreX.Call.await(&Native.upload_abort(&1, upload), 60_000)
    :ok
  end

  @doc """
  Uploads every element of `enumerable`; aborts on any failure, re-raising source errors.
  Closes `span` (from `span/2`) with the :stop or :exception event.
  """
  def run(enumerable, upload, opts, span) do
    progress = Progress.new(opts[:on_progress], opts[:size_hint])

    written =
      try do
        Enum.reduce_while(enumerable, {:ok, progress, gathered(opts)}, fn chunk,
                                                                          {:ok, progress, g} ->
          case gather(upload, g, chunk, opts) do
            {:ok, g, size} -> {:cont, {:ok, Progress.add(progress, size, false), g}}
            {:error, error} -> {:halt, {:error, error}}
          end
        end)
      catch
        kind, reason ->
          abort(upload)
          raised(span, kind, reason, __STACKTRACE__)
          :erlang.raise(kind, reason, __STACKTRACE__)
      end

    with {:ok, progress, gathered} <- written,
         :ok <- flush(upload, gathered, opts.timeout),
         {:ok, summary} <- finish(upload, opts.timeout) do
      Progress.add(progress, 0, true)
      close_span({:ok, summary}, span)
      if opts[:on_complete], do: opts[:on_complete].(summary)
      {:ok, summary}
    else
      {:error, error} ->
        abort(upload)
        close_span({:error, error}, span)
    end
  end

  # Chunks are gathered up to the next part boundary and handed over together: one native call
  # per part rather than one per chunk. What is held stays within the documented bound, since
  # the native side would hold those bytes as its unfinished part anyway.

  @doc "An empty gathering of chunks, for `gather/4`."
  def gathered(opts), do: %{iovecs: [], bytes: 0, need: opts.part_size}

  @doc """
  Adds a chunk, sending what is gathered once it reaches the next part boundary. Returns the
  new gathering and the chunk's size.
  """
  def gather(upload, g, chunk, opts) do
    with {:ok, iovec} <- Args.iovec("upload chunks", chunk) do
      size = IO.iodata_length(iovec)
      iovecs = [iovec | g.iovecs]
      bytes = g.bytes + size

      if bytes >= g.need do
        with :ok <- send_gathered(upload, iovecs, opts.timeout) do
          over = rem(bytes - g.need, opts.part_size)
          {:ok, %{iovecs: [], bytes: 0, need: opts.part_size - over}, size}
        end
      else
        {:ok, %{g | iovecs: iovecs, bytes: bytes}, size}
      end
    end
  end

  @doc "Sends what is still gathered."
  def flush(_upload, %{iovecs: []}, _timeout), do: :ok

  def flush(upload, g, timeout), do: send_gathered(upload, g.iovecs, timeout)

  # The gathered iovecs are kept newest first.
  defp send_gathered(upload, iovecs, timeout),
    do: send_iovec(upload, :lists.append(Enum.reverse(iovecs)), timeout)

  @event [:objectstorex, :upload]

  @doc "Emits the upload :start event; returns the span that the other events close."
  def span(store, path), do: Telemetry.span_start(@event, %{path: path, backend: store.backend})

  @doc "Emits :stop for a summary or :exception for an error; returns `result` unchanged."
  def close_span({:ok, summary} = result, span) do
    measurements = %{bytes: summary.bytes, parts: summary.parts}
    Telemetry.span_stop(span, measurements, %{digest: summary.digest})
    result
  end

  def close_span({:error, %Error{reason: reason}} = result, span) do
    Telemetry.span_exception(span, %{}, %{kind: :error, reason: reason})
    result
  end

  @doc "Emits :exception for something raised, thrown or exited while uploading."
  def raised(span, kind, reason, stacktrace) do
    reason = with %Error{reason: reason} <- reason, do: reason
    Telemetry.span_exception(span, %{}, %{kind: kind, reason: reason, stacktrace: stacktrace})
  end

  @doc "Turns the native summary tuple into the documented map."
  def summary({etag, version, bytes, parts, micros, digest}) do
    %{
      etag: etag,
      version: version,
      bytes: bytes,
      parts: parts,
      duration_us: micros,
      throughput_mb_s: if(micros > 0, do: Float.round(bytes / micros, 1)),
      digest: digest
    }
  end
end
