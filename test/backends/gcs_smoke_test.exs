defmodule ObjectStoreX.Backends.GCSSmokeTest do
  # No GCS emulator speaks the XML API object_store uses, so the GCS client is pointed at the
  # S3 test server with a fake service-account key (README, "Backend support"). Only the data
  # path is expected to work there: put, get, ranges, list, delete. Conditional writes and
  # copies are not GCS semantics on that server, and sign_url is never called: it would reach
  # out to Google.
  use ExUnit.Case, async: true

  @moduletag backend: :s3

  alias ObjectStoreX.{Error, ListResult, Meta, Store, TestBackends}
  import ObjectStoreX.TestHelpers

  setup do
    store = TestBackends.store!(:gcs)
    %{store: store}
  end

  test "the store is a GCS store", %{store: store} do
    assert %Store{backend: :gcs, bucket: bucket} = store
    assert bucket == System.fetch_env!("OBJECTSTOREX_TEST_S3_BUCKET")
  end

  test "put/get round trip", %{store: store} do
    data = random_bytes(100_000)
    assert :ok = ObjectStoreX.put(store, "g/obj.bin", data)

    assert {:ok, ^data, %Meta{location: "g/obj.bin", size: 100_000} = meta} =
             ObjectStoreX.get(store, "g/obj.bin")

    assert %DateTime{} = meta.last_modified

    assert {:ok, %Meta{size: 100_000, location: "g/obj.bin"}} =
             ObjectStoreX.head(store, "g/obj.bin")

    assert :ok = ObjectStoreX.put(store, "g/io.bin", ["a", ?b, ["c"]])
    assert {:ok, "abc", _} = ObjectStoreX.get(store, "g/io.bin")
  end

  test "range gets", %{store: store} do
    data = random_bytes(10_000)
    :ok = ObjectStoreX.put(store, "g/range.bin", data)

    assert {:ok, first, _} = ObjectStoreX.get(store, "g/range.bin", range: {0, 999})
    assert first == binary_part(data, 0, 1000)
    assert {:ok, rest, _} = ObjectStoreX.get(store, "g/range.bin", range: {:offset, 9_500})
    assert rest == binary_part(data, 9_500, 500)
    assert {:ok, clamped, _} = ObjectStoreX.get(store, "g/range.bin", range: {9_990, 20_000})
    assert clamped == binary_part(data, 9_990, 10)

    assert {:ok, [a, b]} = ObjectStoreX.get_ranges(store, "g/range.bin", [{500, 2000}, {0, 100}])
    assert a == binary_part(data, 500, 1501)
    assert b == binary_part(data, 0, 101)
  end

  test "list and list_with_delimiter", %{store: store} do
    for p <- ["top.txt", "d/one.txt", "d/two.txt", "d/sub/three.txt"],
        do: :ok = ObjectStoreX.put(store, p, p)

    assert {:ok, metas} = ObjectStoreX.list(store, prefix: "d")

    assert metas |> Enum.map(& &1.location) |> Enum.sort() ==
             ["d/one.txt", "d/sub/three.txt", "d/two.txt"]

    assert {:ok, %ListResult{objects: objects, common_prefixes: prefixes}} =
             ObjectStoreX.list_with_delimiter(store)

    assert Enum.map(objects, & &1.location) == ["top.txt"]
    assert prefixes == ["d"]
  end

  test "delete", %{store: store} do
    :ok = ObjectStoreX.put(store, "g/del.txt", "x")
    assert :ok = ObjectStoreX.delete(store, "g/del.txt")
    assert {:error, %Error{reason: :not_found}} = ObjectStoreX.get(store, "g/del.txt")
    assert :ok = ObjectStoreX.delete(store, "g/del.txt")

    :ok = ObjectStoreX.put(store, "g/m1.txt", "1")
    :ok = ObjectStoreX.put(store, "g/m2.txt", "2")
    assert {:ok, 2, []} = ObjectStoreX.delete_many(store, ["g/m1.txt", "g/m2.txt"])
    assert {:ok, []} = ObjectStoreX.list(store, prefix: "g")
  end
end
