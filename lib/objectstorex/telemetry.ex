defmodule ObjectStoreX.Telemetry do
  @moduledoc """
  Telemetry events, emitted when the `:telemetry` library is present (ObjectStoreX does not
  depend on it). Handlers run in the process that downloads or uploads: the one enumerating the
  stream, collecting into the sink, or calling `ObjectStoreX.upload_file/4` or
  `ObjectStoreX.transfer/5`.

  Durations are in `:native` time units (convert with `System.convert_time_unit/3`). Metadata
  never contains object data or credentials.

  ## Downloads

  Emitted by `ObjectStoreX.Stream.download/3` and the streams built on it
  (`ObjectStoreX.Stream.lines/3`).

    * `[:objectstorex, :download, :start]` - measurements `%{system_time: integer}`,
      metadata `%{path: String.t(), backend: atom}`
    * `[:objectstorex, :download, :stop]` - measurements `%{duration: native_time, bytes:
      integer, chunks: integer}`, metadata as above plus `:digest` (the hex digest with
      `:hash`, else nil)
    * `[:objectstorex, :download, :exception]` - measurements `%{duration: native_time}`,
      metadata as above plus `:reason`, the `ObjectStoreX.Error` reason (`:not_found`,
      `:checksum_mismatch`, `:timeout`, ...)

  `:start` is emitted when enumeration begins, so a download that fails before the store
  answers (such as `:not_found`) emits `:start` then `:exception` too.

  ## Uploads

  Emitted by `ObjectStoreX.Stream.upload/4`, the `ObjectStoreX.Stream.upload_sink/3`
  collectable, `ObjectStoreX.upload_file/4` and `ObjectStoreX.transfer/5` (`:path` and
  `:backend` are the destination's). Options are checked first: invalid options return or
  raise an error without any event.

    * `[:objectstorex, :upload, :start]` - measurements `%{system_time: integer}`,
      metadata `%{path: String.t(), backend: atom}`
    * `[:objectstorex, :upload, :stop]` - measurements `%{duration: native_time, bytes:
      integer, parts: integer}` (`parts` is 1 for an upload sent as a single PUT), metadata as
      above plus `:digest` (the hex digest with `:hash`, else nil)
    * `[:objectstorex, :upload, :exception]` - measurements `%{duration: native_time}`,
      metadata as above plus `:kind` and `:reason`. When the upload failed, `kind` is `:error`
      and `reason` the `ObjectStoreX.Error` reason. When the source enumerable raised, threw or
      exited, `kind` is `:error`, `:throw` or `:exit`, `reason` the exception or value (the
      reason atom for an `ObjectStoreX.Error`), and `:stacktrace` is included. The upload sink
      cannot see why its collection was halted, and reports `kind: :error, reason: :cancelled`.

  The multipart upload has been aborted when `:exception` is emitted (see "Nothing left behind"
  in `ObjectStoreX.Stream.upload/4`).
  """

  @compile {:no_warn_undefined, :telemetry}

  @typedoc "What `span_start/2` returns and `span_stop/3` and `span_exception/3` take."
  @type span :: %{event: [atom()], metadata: map(), started: integer()}

  @doc false
  @spec execute([atom()], map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    # A handler can only be attached by calling :telemetry, which loads the module, so checking
    # the loaded modules is enough. Code.ensure_loaded?/1 would instead search the whole code
    # path through the code server on every event while :telemetry is absent.
    if function_exported?(:telemetry, :execute, 3) do
      :telemetry.execute(event, measurements, metadata)
    end

    :ok
  end

  @doc false
  @spec span_start([atom()], map()) :: span()
  def span_start(event, metadata) do
    execute(event ++ [:start], %{system_time: System.system_time()}, metadata)
    %{event: event, metadata: metadata, started: System.monotonic_time()}
  end

  @doc false
  @spec span_stop(span(), map(), map()) :: :ok
  def span_stop(span, measurements, metadata) do
    measurements = Map.put(measurements, :duration, System.monotonic_time() - span.started)
    execute(span.event ++ [:stop], measurements, Map.merge(span.metadata, metadata))
  end

  @doc false
  @spec span_exception(span(), map(), map()) :: :ok
  def span_exception(span, measurements, metadata) do
    measurements = Map.put(measurements, :duration, System.monotonic_time() - span.started)
    execute(span.event ++ [:exception], measurements, Map.merge(span.metadata, metadata))
  end
end
