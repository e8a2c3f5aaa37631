defmodule ObjectStoreX.Backends.LocalTest do
  use ExUnit.Case, async: true

  @moduletag backend: :local

  use ObjectStoreX.BehaviourSuite, backend: :local
end
