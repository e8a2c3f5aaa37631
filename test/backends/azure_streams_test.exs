defmodule ObjectStoreX.Backends.AzureStreamsTest do
  use ExUnit.Case, async: true
  @moduletag backend: :azure
  use ObjectStoreX.StreamSuite, backend: :azure
end
