defmodule ObjectStoreX.DoctestTest do
  # The examples in the documentation, run against memory stores.
  use ExUnit.Case, async: true

  doctest ObjectStoreX
  doctest ObjectStoreX.Stream
end
