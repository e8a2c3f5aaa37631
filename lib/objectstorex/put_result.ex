defmodule ObjectStoreX.PutResult do
  @moduledoc """
  What a write returned: the new object's `:etag` and `:version` (either may be `nil` where the
  backend has none). Returned by `ObjectStoreX.put_with_result/4`; pass it back as
  `mode: {:update, result}` for a compare-and-swap write.
  """

  defstruct [:etag, :version]

  @type t :: %__MODULE__{etag: String.t() | nil, version: String.t() | nil}
end
