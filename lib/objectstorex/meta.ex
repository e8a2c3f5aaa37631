defmodule ObjectStoreX.Meta do
  @moduledoc """
  Metadata of one object, the same struct from `ObjectStoreX.head/3`, `ObjectStoreX.get/3` and
  listings.

    * `:location` - the object's path, relative to the store's `:prefix`
    * `:size` - size in bytes
    * `:last_modified` - a UTC `DateTime`
    * `:etag` - the entity tag, when the backend has one (use it with `if_match` and
      `mode: {:update, ...}`)
    * `:version` - the version id, on versioned buckets
  """

  defstruct [:location, :size, :last_modified, :etag, :version]

  @type t :: %__MODULE__{
          location: String.t(),
          size: non_neg_integer(),
          last_modified: DateTime.t(),
          etag: String.t() | nil,
          version: String.t() | nil
        }
end
