defmodule ObjectStoreX.Sync.Report do
  @moduledoc """
  What one `ObjectStoreX.Sync.run/3` did.

    * `:listed` - source objects listed
    * `:copied` - objects copied (with `dry_run: true`: that would be copied)
    * `:skipped` - objects already equal at the destination, or completed by an earlier run
      with the same checkpoint
    * `:deleted` - destination objects deleted because the source has none of that key (with
      `dry_run: true`: that would be deleted)
    * `:bytes` - bytes copied (or that would be)
    * `:duration_us` - the run's wall-clock time, in microseconds
    * `:failed` - `[{key, %ObjectStoreX.Error{}}]`, the key relative to the source `:prefix`
      (for a failed delete, to the `:dest_prefix`)
    * `:dry_run` - whether nothing was changed
  """

  defstruct listed: 0,
            copied: 0,
            skipped: 0,
            deleted: 0,
            bytes: 0,
            duration_us: 0,
            failed: [],
            dry_run: false

  @type t :: %__MODULE__{
          listed: non_neg_integer(),
          copied: non_neg_integer(),
          skipped: non_neg_integer(),
          deleted: non_neg_integer(),
          bytes: non_neg_integer(),
          duration_us: non_neg_integer(),
          failed: [{String.t(), ObjectStoreX.Error.t()}],
          dry_run: boolean()
        }
end
