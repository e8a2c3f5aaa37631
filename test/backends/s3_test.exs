defmodule ObjectStoreX.Backends.S3Test do
  use ExUnit.Case, async: true

  @moduletag backend: :s3

  use ObjectStoreX.BehaviourSuite, backend: :s3
end
