defmodule ObjectStoreX.Garbage do
  @moduledoc false
  # Large chunks that a streaming process has finished with stay in memory until its next
  # garbage collection, and the VM collects once the binaries let go of outgrow a binary heap
  # that grows with the binaries the process keeps: with multi-megabyte chunks, several dead
  # ones (up to 13, measured) outlive their use and take a stream past its memory bound.
  # Shared by uploads (after each part handed over) and downloads (before each chunk awaited).

  @doc """
  Collects the calling process's garbage, unless its heap is larger than `bytes` (the size of
  what a collection frees), so that a collection never costs more than moving that much does.
  A full collection: a minor one would move chunks waiting in the mailbox to the old
  generation, where they outlive their use until the next full one.
  """
  @spec collect(pos_integer()) :: :ok
  def collect(bytes) when is_integer(bytes) and bytes > 0 do
    {:total_heap_size, words} = :erlang.process_info(self(), :total_heap_size)
    if words * :erlang.system_info(:wordsize) <= bytes, do: :erlang.garbage_collect()
    :ok
  end
end
