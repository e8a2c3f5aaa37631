defmodule ObjectStoreX.UploadSink do
  @moduledoc """
  A `Collectable` that uploads what is collected into it, built by
  `ObjectStoreX.Stream.upload_sink/3`.

      File.stream!("large.bin", [], 8_388_608)
      |> Enum.into(ObjectStoreX.Stream.upload_sink(store, "large.bin"))

  Collecting returns the sink with `:result` set to the upload summary
  (`%{etag:, version:, bytes:, parts:, duration_us:, throughput_mb_s:, digest:}`). A failed
  write raises `ObjectStoreX.Error`; the multipart upload is aborted when a write fails, when
  the source raises, when collection is halted, and when the collecting process dies.

  `Stream.into/2` finishes its collectable normally when the stream is halted downstream
  (`Stream.into(sink) |> Enum.take(2)`): what was collected until then is uploaded as the
  object, as with a file.
  """

  alias ObjectStoreX.{Error, ProgressThrottle, Upload}

  @enforce_keys [:store, :path, :opts]
  defstruct [:store, :path, :opts, :result]

  @type t :: %__MODULE__{
          store: ObjectStoreX.Store.t(),
          path: String.t(),
          opts: keyword(),
          result: map() | nil
        }

  defimpl Collectable do
    def into(%ObjectStoreX.UploadSink{} = sink) do
      {resource, path, opts, native} =
        case Upload.validate(sink.store, sink.path, sink.opts) do
          {:ok, resource, path, opts, native} -> {resource, path, opts, native}
          {:error, error} -> raise error
        end

      upload =
        case Upload.start(resource, path, native) do
          {:ok, upload} -> upload
          {:error, error} -> raise error
        end

      progress = ProgressThrottle.new(opts[:on_progress], opts[:size_hint])
      span = Upload.span(sink.store, path)
      # The upload is in the initial accumulator: on :halt, Collectable passes that one back.
      {{upload, progress, span, Upload.gathered(opts)}, &collect(sink, opts, &1, &2)}
    end

    defp collect(_sink, opts, {upload, progress, span, gathered}, {:cont, chunk}) do
      case Upload.gather(upload, gathered, chunk, opts) do
        {:ok, gathered, size} ->
          {upload, ProgressThrottle.add(progress, size, false), span, gathered}

        {:error, %Error{} = error} ->
          Upload.failed(upload, error, span, opts)
          # Collectable's :halt comes next; it must not close the span a second time.
          Process.put({__MODULE__, upload}, :closed)
          raise error
      end
    end

    defp collect(sink, opts, {upload, progress, span, gathered}, :done) do
      case Upload.complete(upload, gathered, progress, span, opts) do
        {:ok, summary} -> %{sink | result: summary}
        {:error, error} -> raise error
      end
    end

    # Collection stopped early: a write failed (its span is closed already, with the reason),
    # the source raised or the consumer halted. The sink cannot see which of the last two, so
    # the event says the upload was cancelled.
    defp collect(_sink, opts, {upload, _progress, span, _gathered}, :halt) do
      with nil <- Process.delete({__MODULE__, upload}) do
        Upload.failed(upload, %Error{reason: :cancelled}, span, opts)
      end

      :ok
    end
  end
end
