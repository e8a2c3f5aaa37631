defmodule ObjectStoreX.Backends.LocalStreamsTest do
  use ExUnit.Case, async: true
  @moduletag backend: :local
  use ObjectStoreX.StreamSuite, backend: :local
end
