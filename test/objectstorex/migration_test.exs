defmodule ObjectStoreX.MigrationTest do
  use ExUnit.Case, async: true

  alias ObjectStoreX.TestBackends

  @mib 1_048_576

  # The pattern the README documents for migrating many objects: bounded concurrency, every
  # object's outcome collected, one failure never taking the caller down.
  defp migrate(source, dest, paths, opts \\ []) do
    paths
    |> Task.async_stream(&{&1, ObjectStoreX.transfer(source, &1, dest, &1, opts)},
      max_concurrency: 4,
      timeout: :infinity,
      ordered: false
    )
    |> Enum.reduce(%{copied: 0, bytes: 0, failed: []}, fn
      {:ok, {_path, {:ok, summary}}}, acc ->
        %{acc | copied: acc.copied + 1, bytes: acc.bytes + summary.bytes}

      {:ok, {path, {:error, error}}}, acc ->
        %{acc | failed: [{path, error.reason} | acc.failed]}
    end)
  end

  test "migrating a prefix reports every failure and copies the rest" do
    source = TestBackends.store!(:memory)
    dest = TestBackends.store!(:local)
    sizes = [0, 1, 5 * @mib + 1, 12_345]

    for {size, i} <- Enum.with_index(sizes),
        do: :ok = ObjectStoreX.put(source, "data/#{i}.bin", :crypto.strong_rand_bytes(size))

    listed = ObjectStoreX.Stream.list_stream(source, prefix: "data/") |> Enum.map(& &1.location)
    summary = migrate(source, dest, listed ++ ["data/missing.bin"])

    assert summary.copied == 4
    assert summary.bytes == Enum.sum(sizes)
    assert summary.failed == [{"data/missing.bin", :not_found}]

    for path <- listed do
      assert ObjectStoreX.get!(dest, path) == ObjectStoreX.get!(source, path)
    end
  end

  # The README's example of testing a migration's failure handling with ObjectStoreX.Fault.
  test "the third part of one upload failing: that upload is aborted, the rest is copied" do
    source = TestBackends.store!(:memory)
    dest = TestBackends.store!(:local)
    :ok = ObjectStoreX.put(source, "data/big.bin", :crypto.strong_rand_bytes(16 * @mib))
    :ok = ObjectStoreX.put(source, "data/small.bin", "small")

    faulty =
      ObjectStoreX.Fault.wrap!(dest,
        fail: [op: :put_part, part: 3, path: "data/big.bin", reason: :timeout]
      )

    listed = ObjectStoreX.Stream.list_stream(source, prefix: "data/") |> Enum.map(& &1.location)
    summary = migrate(source, faulty, listed, part_size: 5 * @mib)

    assert summary.failed == [{"data/big.bin", :timeout}]
    assert summary.copied == 1
    calls = ObjectStoreX.Fault.calls!(faulty)
    assert %{op: :abort_multipart, path: "data/big.bin", outcome: :ok} in calls
    refute Enum.any?(calls, &(&1.op == :complete_multipart))
    ObjectStoreX.Test.refute_object(dest, "data/big.bin")
    ObjectStoreX.Test.assert_object(dest, "data/small.bin", "small")
  end

  @tag :s3_and_azure
  test "transfer between the S3 and Azure servers, both ways, with digests that agree" do
    s3 = TestBackends.store!(:s3)
    azure = TestBackends.store!(:azure)
    data = :crypto.strong_rand_bytes(2 * 5 * @mib + 777)
    digest = Base.encode16(:crypto.hash(:sha256, data), case: :lower)
    :ok = ObjectStoreX.put(s3, "x/src.bin", data)

    assert {:ok, %{bytes: bytes, digest: ^digest, parts: 3}} =
             ObjectStoreX.transfer(s3, "x/src.bin", azure, "x/copy.bin", part_size: 5 * @mib)

    assert bytes == byte_size(data)

    assert {:ok, %{digest: ^digest}} =
             ObjectStoreX.transfer(azure, "x/copy.bin", s3, "x/back.bin", part_size: 5 * @mib)

    assert ObjectStoreX.get!(s3, "x/back.bin") == data
  end
end
