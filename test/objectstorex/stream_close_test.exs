defmodule ObjectStoreX.StreamCloseTest do
  # Elixir's Stream.transform/5 calls its source's after-callback a second time when the
  # consumer halts during the transform's last function: Stream.lines/3 emits a final line
  # without a newline there. Closing twice must neither wait for a message nor leave one.
  use ExUnit.Case, async: true

  import ObjectStoreX.TestHelpers

  setup do
    store = ObjectStoreX.new!(:memory)
    :ok = ObjectStoreX.put(store, "a", "first\nlast line without newline")
    %{store: store}
  end

  # The close used to wait 30 s for a terminal message it had already taken.
  defp within(ms, fun) do
    task = Task.async(fun)
    assert {:ok, value} = Task.yield(task, ms) || Task.shutdown(task), "no result within #{ms} ms"
    value
  end

  test "halting on the last line returns at once", %{store: store} do
    lines = within(5_000, fn -> ObjectStoreX.Stream.lines(store, "a") |> Enum.take(2) end)
    assert lines == ["first", "last line without newline"]
    assert drain_mailbox() == []
  end

  test "zipping a lines stream with itself", %{store: store} do
    stream = ObjectStoreX.Stream.lines(store, "a")
    pairs = within(5_000, fn -> Stream.zip(stream, stream) |> Enum.to_list() end)

    assert pairs == [
             {"first", "first"},
             {"last line without newline", "last line without newline"}
           ]
  end

  test "a download still drains what a cancelled producer sent", %{store: store} do
    :ok = ObjectStoreX.put(store, "big", :binary.copy("x", 4 * 1_048_576))

    chunks =
      ObjectStoreX.Stream.download(store, "big", chunk_size: 65_536, prefetch: 4) |> Enum.take(1)

    assert [<<_::binary-size(65_536)>>] = chunks
    assert drain_mailbox() == []
  end
end
