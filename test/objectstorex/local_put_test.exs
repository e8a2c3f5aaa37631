defmodule ObjectStoreX.LocalPutTest do
  # A local store's plain PUT (overwrite, no attributes) writes the data where no listing sees
  # it (on Linux an unnamed file, else a staging file beside the target), checks its size and
  # puts it in place (a link, or a rename over an existing file), in one call on the local pool.
  use ExUnit.Case, async: true

  @tag :tmp_dir
  test "creates missing directories, answers the ETag a HEAD gives, and leaves no staging file",
       %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    data = :crypto.strong_rand_bytes(10_000)

    assert {:ok, %ObjectStoreX.PutResult{etag: etag}} =
             ObjectStoreX.put_with_result(store, "a/b/c/new.bin", data)

    assert File.read!(Path.join(dir, "a/b/c/new.bin")) == data

    assert %ObjectStoreX.Meta{etag: ^etag, size: 10_000} =
             ObjectStoreX.head!(store, "a/b/c/new.bin")

    assert Path.wildcard(Path.join(dir, "**/*#*"), match_dot: true) == []
  end

  @tag :tmp_dir
  test "an overwrite replaces the file whole, with a new file's mode and the ETag a HEAD gives",
       %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    :ok = ObjectStoreX.put(store, "fresh.bin", "a")
    :ok = ObjectStoreX.put(store, "over.bin", :binary.copy("old", 1000))
    data = :crypto.strong_rand_bytes(5_000)

    assert {:ok, %ObjectStoreX.PutResult{etag: etag}} =
             ObjectStoreX.put_with_result(store, "over.bin", data)

    assert File.read!(Path.join(dir, "over.bin")) == data
    assert %ObjectStoreX.Meta{etag: ^etag, size: 5_000} = ObjectStoreX.head!(store, "over.bin")
    assert File.ls!(dir) |> Enum.sort() == ["fresh.bin", "over.bin"]

    mode = fn name -> File.stat!(Path.join(dir, name)).mode end
    assert mode.("over.bin") == mode.("fresh.bin")
  end

  @tag :tmp_dir
  test "concurrent overwrites of one key each land whole", %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    versions = for i <- 1..16, do: :binary.copy(<<i>>, 4096 * i)

    versions
    |> Task.async_stream(&ObjectStoreX.put(store, "d/same.bin", &1), max_concurrency: 16)
    |> Enum.each(fn {:ok, result} -> assert result == :ok end)

    assert File.read!(Path.join(dir, "d/same.bin")) in versions
    assert File.ls!(Path.join(dir, "d")) == ["same.bin"]
  end

  @tag :tmp_dir
  test "a failed write is an error and leaves neither the object nor a staging file",
       %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    File.mkdir_p!(Path.join(dir, "occupied/child"))

    assert {:error, %ObjectStoreX.Error{}} = ObjectStoreX.put(store, "occupied", "bytes")
    assert File.ls!(dir) == ["occupied"]
    assert File.ls!(Path.join(dir, "occupied")) == ["child"]
  end
end
