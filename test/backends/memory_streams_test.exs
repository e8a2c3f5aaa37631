defmodule ObjectStoreX.Backends.MemoryStreamsTest do
  use ExUnit.Case, async: true
  @moduletag backend: :memory
  use ObjectStoreX.StreamSuite, backend: :memory

  describe "memory store listings" do
    # Objects written together differ in their microseconds: their timestamps are derived
    # from one another, across slices and pages, and must equal those of a fresh head.
    test "list_stream gives each object the meta that head gives it", %{store: store} do
      for i <- 1..700, do: :ok = ObjectStoreX.put(store, "many/#{i}", String.duplicate("x", i))

      heads =
        for i <- 1..700, into: %{}, do: {"many/#{i}", ObjectStoreX.head!(store, "many/#{i}")}

      for opts <- [[], [page_size: 7], [page_size: 100_000]] do
        metas = OSXStream.list_stream(store, [prefix: "many/"] ++ opts) |> Enum.to_list()
        assert Map.new(metas, &{&1.location, &1}) == heads
      end

      assert Map.new(ObjectStoreX.list!(store, prefix: "many/"), &{&1.location, &1}) == heads
    end
  end

  describe "memory store uploads" do
    # Large enough that the chunks are joined on several threads, in pieces whose boundaries
    # fall inside chunks.
    @size 48 * @mib + 12_345

    test "a large streamed upload is joined intact into one object", %{store: store} do
      data = :crypto.strong_rand_bytes(@size)
      chunks = for <<c::binary-size(333_333) <- data>>, do: c
      tail = binary_part(data, length(chunks) * 333_333, @size - length(chunks) * 333_333)
      parent = self()

      assert :ok =
               OSXStream.upload(chunks ++ [tail], store, "big/stream.bin",
                 hash: :sha256,
                 content_type: "application/octet-stream",
                 on_complete: &send(parent, {:done, &1})
               )

      assert_receive {:done, %{bytes: @size, parts: 1, digest: digest}}
      assert digest == sha256(data)
      assert ObjectStoreX.get!(store, "big/stream.bin") == data
    end

    @tag :tmp_dir
    test "a large file read in many blocks is joined intact", %{store: store, tmp_dir: dir} do
      data = :crypto.strong_rand_bytes(@size)
      file = Path.join(dir, "big.bin")
      File.write!(file, data)

      assert {:ok, %{bytes: @size, parts: 1}} =
               ObjectStoreX.upload_file(store, "big/file.bin", file, part_size: @part)

      assert ObjectStoreX.get!(store, "big/file.bin") == data
    end

    test "an upload whose source raises stores nothing", %{store: store} do
      source =
        Stream.concat(
          Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@mib) end) |> Stream.take(20),
          Stream.map([:boom], fn x -> raise "source failed: #{x}" end)
        )

      assert_raise RuntimeError, "source failed: boom", fn ->
        OSXStream.upload(source, store, "big/halted.bin")
      end

      assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
               ObjectStoreX.head(store, "big/halted.bin")
    end
  end
end
