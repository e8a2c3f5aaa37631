defmodule ObjectStoreX.ListResult do
  @moduledoc """
  One level of a listing from `ObjectStoreX.list_with_delimiter/2`: the `:objects` directly
  under the prefix and the `:common_prefixes` ("directories") below it.
  """

  defstruct objects: [], common_prefixes: []

  @type t :: %__MODULE__{objects: [ObjectStoreX.Meta.t()], common_prefixes: [String.t()]}
end
