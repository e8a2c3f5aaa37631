defmodule ObjectStoreX.Backends.MemoryTest do
  use ExUnit.Case, async: true

  @moduletag backend: :memory

  use ObjectStoreX.BehaviourSuite, backend: :memory
end
