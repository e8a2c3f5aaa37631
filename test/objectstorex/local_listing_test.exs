defmodule ObjectStoreX.LocalListingTest do
  # A local store lists its directory tree itself (one stat per file, relative to its
  # directory); what it lists must stay what the rest of the store reads and writes: regular
  # files, links followed, nothing half-written.
  use ExUnit.Case, async: true

  alias ObjectStoreX.Error

  setup %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)

    for {path, size} <- [{"a/one", 1}, {"a/b/two", 2}, {"a/b/c/three", 3}, {"z", 4}] do
      :ok = ObjectStoreX.put(store, path, :binary.copy("x", size))
    end

    File.write!(Path.join(dir, "a/half#3"), "being written")
    File.write!(Path.join(dir, "a/kept#x"), "a name like any other")
    {_, 0} = System.cmd("mkfifo", [Path.join(dir, "fifo")])
    File.ln_s!(Path.join(dir, "a/one"), Path.join(dir, "link"))
    File.ln_s!(Path.join(dir, "a/b"), Path.join(dir, "dirlink"))
    File.ln_s!(Path.join(dir, "nowhere"), Path.join(dir, "broken"))
    File.mkdir_p!(Path.join(dir, "empty/dir"))
    %{store: store}
  end

  @expected %{
    "a/one" => 1,
    "a/b/two" => 2,
    "a/b/c/three" => 3,
    "z" => 4,
    "a/kept#x" => 21,
    "link" => 1,
    "dirlink/two" => 2,
    "dirlink/c/three" => 3
  }

  @tag :tmp_dir
  test "lists regular files and followed links, not FIFOs, broken links or writes in progress",
       %{store: store} do
    listed = ObjectStoreX.Stream.list_stream(store, page_size: 3) |> Enum.to_list()
    assert Map.new(listed, &{&1.location, &1.size}) == @expected
    assert length(listed) == map_size(@expected)

    for meta <- listed do
      assert {:ok, head} = ObjectStoreX.head(store, meta.location)

      assert {head.size, head.etag, head.last_modified} ==
               {meta.size, meta.etag, meta.last_modified}
    end

    assert {:ok, listed_again} = ObjectStoreX.list(store)
    assert Enum.sort(listed_again) == Enum.sort(listed)
  end

  @tag :tmp_dir
  test "a prefix lists its directory; an offset keeps what sorts after it", %{store: store} do
    under_a = for {"a/" <> _ = path, size} <- @expected, into: %{}, do: {path, size}
    listed = ObjectStoreX.Stream.list_stream(store, prefix: "a") |> Enum.to_list()
    assert Map.new(listed, &{&1.location, &1.size}) == under_a

    for offset <- ["a/b", "a/b/two", "dirlink", "link", "zz"] do
      after_it = for {path, _} <- @expected, path > offset, into: MapSet.new(), do: path
      assert {:ok, metas} = ObjectStoreX.list(store, offset: offset)
      assert MapSet.new(metas, & &1.location) == after_it, "offset #{offset}"
    end

    assert [] == ObjectStoreX.Stream.list_stream(store, prefix: "missing") |> Enum.to_list()
    assert [] == ObjectStoreX.Stream.list_stream(store, prefix: "z") |> Enum.to_list()
  end

  @tag :tmp_dir
  test "a file name that is no valid path ends the listing with an error", %{
    store: store,
    tmp_dir: dir
  } do
    File.write!(Path.join(dir, "a/bad\nname"), "x")
    assert {:error, %Error{reason: :invalid_path}} = ObjectStoreX.list(store)
    error = catch_error(ObjectStoreX.Stream.list_stream(store) |> Enum.to_list())
    assert %Error{reason: :invalid_path} = error
    # Another directory still lists.
    assert {:ok, metas} = ObjectStoreX.list(store, prefix: "a/b")
    assert Enum.sort(Enum.map(metas, & &1.location)) == ["a/b/c/three", "a/b/two"]
  end
end
