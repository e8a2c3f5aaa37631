defmodule ObjectStoreX.ProgressThrottle do
  @moduledoc false
  # The `:on_progress` throttle shared by downloads and uploads: the callback runs for the
  # first bytes, then at most every 100 ms, and once more at the end.

  defstruct fun: nil, total: nil, bytes: 0, last: nil

  @type t :: %__MODULE__{
          fun: (map() -> any()) | nil,
          total: non_neg_integer() | nil,
          bytes: non_neg_integer(),
          last: integer() | nil
        }

  @interval_ms 100

  @doc "A throttle for `fun` (nil reports nothing), out of `total` bytes when known."
  @spec new((map() -> any()) | nil, non_neg_integer() | nil) :: t()
  def new(fun, total \\ nil), do: %__MODULE__{fun: fun, total: total}

  @doc "Counts `bytes` more; reports when due, or always when `final?`."
  @spec add(t(), non_neg_integer(), boolean()) :: t()
  def add(%__MODULE__{fun: nil} = progress, bytes, _final?),
    do: %{progress | bytes: progress.bytes + bytes}

  def add(progress, bytes, final?) do
    progress = %{progress | bytes: progress.bytes + bytes}
    now = System.monotonic_time(:millisecond)

    # `last` starts as nil, not 0: monotonic time is usually negative.
    if final? or is_nil(progress.last) or now - progress.last >= @interval_ms do
      progress.fun.(%{bytes: progress.bytes, total: progress.total})
      %{progress | last: now}
    else
      progress
    end
  end
end
