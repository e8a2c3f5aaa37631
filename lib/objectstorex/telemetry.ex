defmodule ObjectStoreX.Telemetry do
  @moduledoc """
  Telemetry events, emitted when the `:telemetry` application is present (ObjectStoreX does
  not depend on it).

    * `[:objectstorex, :download, :start]` - measurements `%{system_time: integer}`,
      metadata `%{path: String.t(), backend: atom}`
    * `[:objectstorex, :download, :stop]` - measurements `%{duration: native_time, bytes:
      integer, chunks: integer}`, metadata as above plus `:digest`
    * `[:objectstorex, :download, :exception]` - measurements `%{duration: native_time}`,
      metadata as above plus `:reason`

  Metadata never contains object data or credentials.
  """

  @compile {:no_warn_undefined, :telemetry}

  @doc false
  @spec execute([atom()], map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    if Code.ensure_loaded?(:telemetry) do
      :telemetry.execute(event, measurements, metadata)
    end

    :ok
  end
end
