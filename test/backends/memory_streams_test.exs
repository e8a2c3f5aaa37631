defmodule ObjectStoreX.Backends.MemoryStreamsTest do
  use ExUnit.Case, async: true
  @moduletag backend: :memory
  use ObjectStoreX.StreamSuite, backend: :memory
end
