defmodule ObjectStoreX.Backends.S3StreamsTest do
  use ExUnit.Case, async: true
  @moduletag backend: :s3
  use ObjectStoreX.StreamSuite, backend: :s3
end
