defmodule ObjectStoreX.GzipLinesTest do
  # Stream.lines/3 with decompress: :gzip on multi-member, corrupt, truncated and explosive
  # input, on the memory and local stores (the local store reads the file natively in blocks).
  use ExUnit.Case, async: true

  alias ObjectStoreX.Error

  setup do
    %{store: ObjectStoreX.new!(:memory)}
  end

  @tag :tmp_dir
  test "every member of a multi-member gzip, whatever the chunk size", %{tmp_dir: dir} do
    # What `cat a.gz b.gz > both.gz` makes; gzip -d reads both members.
    a = Enum.map_join(1..3_000, "", &"a #{&1}\n")
    b = Enum.map_join(1..3_000, "", &"b #{&1}\n")
    both = :zlib.gzip(a) <> :zlib.gzip("") <> :zlib.gzip(b)

    # From a prefetch of 4 the consumer gives credits back in batches: reads ahead of a local
    # file once held them all while the inflated pieces each waited for one, and it stalled.
    for store <- [ObjectStoreX.new!(:memory), ObjectStoreX.new!(:local, root: dir)],
        chunk_size <- [7, 4096, byte_size(both)],
        prefetch <- [nil, 1, 4, 15] do
      :ok = ObjectStoreX.put(store, "both.gz", both)
      opts = [decompress: :gzip, chunk_size: chunk_size, prefetch: prefetch]
      lines = ObjectStoreX.Stream.lines(store, "both.gz", opts) |> Enum.to_list()

      assert length(lines) == 6_000
      assert hd(lines) == "a 1" and Enum.at(lines, 3_000) == "b 1"
      assert List.last(lines) == "b 3000"
    end
  end

  test "a member whose CRC does not match is an error", %{store: store} do
    gz = :zlib.gzip("some text\n")
    at = byte_size(gz) - 8
    <<head::binary-size(at), crc::32, size::binary>> = gz
    :ok = ObjectStoreX.put(store, "bad.gz", head <> <<Bitwise.bxor(crc, 1)::32>> <> size)

    assert %Error{message: message} =
             catch_error(
               ObjectStoreX.Stream.lines(store, "bad.gz", decompress: :gzip)
               |> Enum.to_list()
             )

    assert message =~ "CRC"
  end

  test "a gzip missing its trailer is an error, not a silently short read", %{store: store} do
    gz = :zlib.gzip("one\ntwo\nthree\n")
    :ok = ObjectStoreX.put(store, "t.gz", binary_part(gz, 0, byte_size(gz) - 8))

    assert %Error{reason: :generic, message: message} =
             catch_error(
               ObjectStoreX.Stream.lines(store, "t.gz", decompress: :gzip)
               |> Enum.to_list()
             )

    assert message =~ "gzip"
  end

  test "bytes that are not gzip raise %Error{}, not ErlangError", %{store: store} do
    :ok = ObjectStoreX.put(store, "bad.gz", "definitely not gzip data\n")

    assert %Error{} =
             catch_error(
               ObjectStoreX.Stream.lines(store, "bad.gz", decompress: :gzip)
               |> Enum.to_list()
             )
  end

  test "a small gzip of many newlines is inflated piece by piece", %{store: store} do
    # 64 MiB of newlines compress to about 64 KiB. Taking five lines must not inflate the
    # whole chunk (or the whole object) into memory at once.
    gz = :zlib.gzip(:binary.copy("\n", 64 * 1_048_576))
    :ok = ObjectStoreX.put(store, "nl.gz", gz)
    {:memory, before} = :erlang.process_info(self(), :memory)

    lines =
      ObjectStoreX.Stream.lines(store, "nl.gz", decompress: :gzip, chunk_size: byte_size(gz))
      |> Enum.take(5)

    assert lines == ["", "", "", "", ""]
    {:memory, after_take} = :erlang.process_info(self(), :memory)
    assert after_take - before < 64 * 1_048_576
  end

  test "a complete gzip still streams every line", %{store: store} do
    text = Enum.map_join(1..10_000, "", &"line #{&1}\n")
    :ok = ObjectStoreX.put(store, "ok.gz", :zlib.gzip(text))
    lines = ObjectStoreX.Stream.lines(store, "ok.gz", decompress: :gzip) |> Enum.to_list()
    assert length(lines) == 10_000
    assert List.last(lines) == "line 10000"
  end
end
