defmodule ObjectStoreX.Backends.SyncTest do
  # ObjectStoreX.Sync between real stores of every kind: memory, local, S3 (ministack), Azure
  # (Azurite) and WebDAV (rclone; no object of a part or more: it takes no multipart upload).
  # Each pair is tagged with the server it needs, so a missing server excludes only its pairs.
  use ExUnit.Case, async: true

  import ObjectStoreX.SyncHelpers

  alias ObjectStoreX.{Error, FaultProxy, TestBackends}
  alias ObjectStoreX.Sync
  alias ObjectStoreX.Sync.Report

  # {source, destination, objects, objects of 6 MiB (multipart with 5 MiB parts), tags}
  @pairs [
    {:memory, :local, 1500, 1, [backend: :local]},
    {:local, :memory, 300, 0, [backend: :local]},
    {:local, :s3, 300, 2, [backend: :s3]},
    {:s3, :azure, 250, 1, [backend: :s3, s3_and_azure: true]},
    {:azure, :memory, 250, 0, [backend: :azure]},
    {:azure, :local, 200, 0, [backend: :azure]},
    {:s3, :local, 200, 1, [backend: :s3]},
    {:memory, :s3, 200, 0, [backend: :s3]},
    {:local, :webdav, 200, 0, [backend: :webdav]},
    {:webdav, :memory, 150, 0, [backend: :webdav]}
  ]

  @part 5 * 1_048_576

  for {from, to, n, big, tags} <- @pairs do
    describe "#{from} -> #{to}" do
      @tag tags

      test "copies #{n} objects of mixed sizes exactly, then nothing; dry_run and delete" do
        from = unquote(from)
        to = unquote(to)
        source = TestBackends.store!(from)
        dest = TestBackends.store!(to)
        tree = tree(unquote(n), unquote(big))
        populate!(source, "src", tree)

        opts = [prefix: "src", dest_prefix: "dst", concurrency: 8, part_size: @part]

        assert {:ok, %Report{} = report} = Sync.run(source, dest, opts)
        assert report.failed == []
        assert report.listed == length(tree)
        assert report.copied == length(tree)
        assert report.bytes == tree |> Enum.map(&byte_size(elem(&1, 1))) |> Enum.sum()
        assert_holds!(dest, "dst", tree)

        # Idempotent: the second identical run copies nothing.
        assert {:ok, %Report{copied: 0, failed: [], deleted: 0} = again} =
                 Sync.run(source, dest, opts)

        assert again.skipped == length(tree)

        # A changed object (another size), a new one, and an extra at the destination.
        {changed_key, _} = Enum.at(tree, 3)
        :ok = ObjectStoreX.put(source, "src/" <> changed_key, "changed!")
        :ok = ObjectStoreX.put(source, "src/new object", "new")
        :ok = ObjectStoreX.put(dest, "dst/extra/only here", "extra")

        expected =
          tree
          |> Map.new()
          |> Map.put(changed_key, "changed!")
          |> Map.put("new object", "new")

        # dry_run reports what would be done and changes nothing.
        before = contents(dest, "dst")

        assert {:ok, %Report{dry_run: true, copied: 2, deleted: 1, failed: []}} =
                 Sync.run(source, dest, opts ++ [dry_run: true, delete: true])

        assert contents(dest, "dst") == before

        # Without :delete the extra stays; with it, it goes.
        assert {:ok, %Report{copied: 2, deleted: 0, failed: []}} = Sync.run(source, dest, opts)
        assert_holds!(dest, "dst", Map.put(expected, "extra/only here", "extra"))

        assert {:ok, %Report{copied: 0, deleted: 1, failed: []}} =
                 Sync.run(source, dest, opts ++ [delete: true])

        assert_holds!(dest, "dst", expected)

        # :checksum compares the bytes: an object of the same size and a newer date, but
        # other bytes, is found and copied.
        {key, data} = Enum.find(tree, fn {_, d} -> byte_size(d) > 10 end)
        :ok = ObjectStoreX.put(dest, "dst/" <> key, :binary.copy("x", byte_size(data)))

        assert {:ok, %Report{copied: 0}} = Sync.run(source, dest, opts)

        assert {:ok, %Report{copied: 1, failed: []} = checked} =
                 Sync.run(source, dest, opts ++ [compare: :checksum])

        assert checked.skipped == map_size(expected) - 1
        assert_holds!(dest, "dst", expected)
      end
    end
  end

  describe "a source listing that fails part way" do
    @describetag backend: :s3

    # Short backoffs keep the exhausted retries quick.
    @retry [max_retries: 1, init_backoff: 10, max_backoff: 20, retry_timeout: 5_000]

    test "is an error, and :delete deletes nothing" do
      # S3 lists 1,000 keys a page: the second page's request fails.
      proxy =
        FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [
          {"GET", ~r/continuation-token=/, 500}
        ])

      source = TestBackends.store!(:s3, endpoint: FaultProxy.url(proxy), retry: @retry)
      direct = TestBackends.store!(:s3, prefix: source.prefix)
      tree = for i <- 1..1100, do: {"k#{String.pad_leading("#{i}", 5, "0")}", "#{i}"}
      populate!(direct, nil, tree)

      dest = TestBackends.store!(:memory)
      extras = for i <- 1..20, do: {"zz-extra-#{i}", "extra"}
      populate!(dest, nil, extras)

      assert {:error, %Error{} = e} = Sync.run(source, dest, delete: true)
      assert e.message =~ "listing the source failed"
      assert e.message =~ "nothing deleted"
      assert FaultProxy.count(proxy, "GET", ~r/continuation-token=/) >= 1

      # The extras are all still there, and what was listed before the failure was copied.
      got = contents(dest, nil)
      for {k, v} <- extras, do: assert(got[k] == v)
      assert map_size(got) > length(extras)
    end
  end
end
