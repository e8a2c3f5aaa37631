defmodule ObjectStoreX.Backends.LocalStreamsTest do
  use ExUnit.Case, async: true
  @moduletag backend: :local
  use ObjectStoreX.StreamSuite, backend: :local

  # A listing builds each `%DateTime{}` from scratch, reuses the previous one or derives it
  # from the previous one, depending on what changed: every way must give Elixir's own struct.
  @tag :tmp_dir
  test "listed timestamps are exact whatever their neighbours", %{tmp_dir: dir} do
    File.mkdir_p!(Path.join(dir, "t"))
    for i <- 1..40, do: File.write!(Path.join(dir, "t/#{i}"), "x")
    store = ObjectStoreX.new!(:local, root: dir)
    # Times are set in the order the files are listed (touching them does not change it), so
    # that each case follows the one before it: the same time, the next second, a new minute,
    # day and month, an hour later, a year earlier.
    order = ObjectStoreX.list!(store, prefix: "t") |> Enum.map(& &1.location)
    # 2024-02-29T23:59:58Z
    base = 1_709_251_198
    steps = [0, 0, 1, 1, 2, 62, 3600, -31_622_400, -31_622_399, -31_622_399]

    expected =
      for {name, i} <- Enum.with_index(order), into: %{} do
        time = base + Enum.at(steps, rem(i, length(steps)))
        File.touch!(Path.join(dir, name), time)
        {name, DateTime.from_unix!(time * 1_000_000, :microsecond)}
      end

    assert map_size(expected) == 40
    listed = fn metas -> Map.new(metas, &{&1.location, &1.last_modified}) end
    assert ObjectStoreX.list!(store, prefix: "t") |> Enum.map(& &1.location) == order
    assert listed.(ObjectStoreX.list!(store, prefix: "t")) == expected
    assert listed.(OSXStream.list_stream(store, prefix: "t") |> Enum.to_list()) == expected

    assert listed.(OSXStream.list_stream(store, prefix: "t", page_size: 3) |> Enum.to_list()) ==
             expected
  end
end
