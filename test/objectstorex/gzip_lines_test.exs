defmodule ObjectStoreX.GzipLinesTest do
  # Stream.lines/3 with decompress: :gzip on corrupt, truncated and explosive input.
  use ExUnit.Case, async: true

  alias ObjectStoreX.Error

  setup do
    %{store: ObjectStoreX.new!(:memory)}
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
