defmodule ObjectStoreX.Backends.S3AbortTest do
  # Every failure path of a multipart upload, proven against the real S3 server by listing its
  # in-progress multipart uploads through the server's own API (boto3).
  use ExUnit.Case, async: true
  @moduletag backend: :s3

  alias ObjectStoreX.{FaultProxy, TestBackends, TestHelpers}
  alias ObjectStoreX.Stream, as: OSXStream

  @mib 1_048_576
  @part 5 * @mib

  setup do
    {:ok, store: TestBackends.store!(:s3)}
  end

  defp in_progress(store), do: TestHelpers.s3_uploads_in_progress(store)

  defp eventually_none(store, tries \\ 50) do
    case in_progress(store) do
      0 -> 0
      n when tries == 0 -> n
      _ -> Process.sleep(100) && eventually_none(store, tries - 1)
    end
  end

  # A source that yields `parts` full parts, tells the test, then blocks forever.
  defp stalling_source(parent, parts) do
    Stream.concat(
      Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@part) end) |> Stream.take(parts),
      Stream.map([:stall], fn _ ->
        send(parent, :stalled)
        Process.sleep(:infinity)
      end)
    )
  end

  test "the source raising aborts the upload", %{store: store} do
    source =
      Stream.concat(
        List.duplicate(:crypto.strong_rand_bytes(@part), 3),
        Stream.map([1], fn _ -> raise "boom" end)
      )

    assert_raise RuntimeError, "boom", fn ->
      OSXStream.upload(source, store, "raise.bin", part_size: @part)
    end

    assert eventually_none(store) == 0

    assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
             ObjectStoreX.head(store, "raise.bin")
  end

  test "the uploading process being killed aborts the upload", %{store: store} do
    parent = self()

    uploader =
      spawn(fn ->
        stalling_source(parent, 3) |> OSXStream.upload(store, "killed.bin", part_size: @part)
      end)

    assert_receive :stalled, 10_000
    assert in_progress(store) == 1
    Process.exit(uploader, :kill)
    assert eventually_none(store) == 0
  end

  # Collectable's :halt, which Enum.into/2 and Stream.into/2 send when the source raises.
  test "a sink whose source raises aborts the upload", %{store: store} do
    parent = self()

    source =
      Stream.concat(
        Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@part + 1) end) |> Stream.take(2),
        Stream.map([1], fn _ ->
          send(parent, {:count, in_progress(store)})
          raise "boom"
        end)
      )

    assert_raise RuntimeError, "boom", fn ->
      Enum.into(source, OSXStream.upload_sink(store, "halted.bin", part_size: @part))
    end

    assert_received {:count, 1}
    assert eventually_none(store) == 0

    assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
             ObjectStoreX.head(store, "halted.bin")
  end

  # Stream.into/2 finishes its collectable with :done, not :halt, when the stream is halted
  # downstream: what was collected is uploaded, as File.stream! keeps what was written.
  test "a sink halted downstream completes what it collected", %{store: store} do
    taken =
      Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@part + 1) end)
      |> Stream.into(OSXStream.upload_sink(store, "taken.bin", part_size: @part))
      |> Enum.take(2)

    assert in_progress(store) == 0
    assert {:ok, %ObjectStoreX.Meta{size: size}} = ObjectStoreX.head(store, "taken.bin")
    assert size == IO.iodata_length(taken)
  end

  test "an unfinished upload being garbage-collected aborts it", %{store: store} do
    parent = self()

    owner =
      spawn(fn ->
        {acc, collect} =
          Collectable.into(OSXStream.upload_sink(store, "gc.bin", part_size: @part))

        _ = collect.(acc, {:cont, :crypto.strong_rand_bytes(@part + 1)})
        send(parent, :written)

        receive do
          :drop -> :ok
        end

        # Nothing here refers to the upload any more; the owner stays alive, so only garbage
        # collection (not the owner's death) can end the upload.
        :erlang.garbage_collect()
        send(parent, :collected)
        Process.sleep(:infinity)
      end)

    assert_receive :written, 10_000
    assert in_progress(store) == 1
    send(owner, :drop)
    assert_receive :collected, 10_000
    assert eventually_none(store) == 0
    assert Process.alive?(owner)
    Process.exit(owner, :kill)
  end

  test "a write that times out aborts the upload", %{store: store} do
    parent = self()

    uploader =
      Task.async(fn ->
        {acc, collect} =
          Collectable.into(
            OSXStream.upload_sink(store, "slow.bin",
              part_size: @part,
              max_concurrency: 1,
              timeout: 1
            )
          )

        try do
          Enum.reduce(1..20, acc, fn _, acc ->
            collect.(acc, {:cont, :crypto.strong_rand_bytes(@part)})
          end)

          send(parent, :no_timeout)
        rescue
          e in ObjectStoreX.Error -> send(parent, {:raised, e.reason})
        end
      end)

    Task.await(uploader, 60_000)
    assert_received {:raised, :timeout}
    assert eventually_none(store) == 0
  end

  describe "a request failing on the server" do
    # Short backoffs keep the exhausted retries quick; three attempts in all.
    @retry [max_retries: 2, init_backoff: 10, max_backoff: 50, retry_timeout: 10_000]
    @attempts 3

    @part_2 ~r/[?&]partNumber=2(&|$)/
    @upload_id ~r/[?&]uploadId=/

    # A store whose requests pass through a proxy that fails those matching `rule`, and a
    # store on the same prefix that talks to the server directly.
    defp faulty_store(rule) do
      proxy = FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [rule])
      store = TestBackends.store!(:s3, endpoint: FaultProxy.url(proxy), retry: @retry)
      direct = TestBackends.store!(:s3, prefix: store.prefix)
      {proxy, store, direct}
    end

    defp put_all(store, chunks), do: :ok = ObjectStoreX.put(store, "source.bin", chunks)

    # Three full parts and a short last one, in chunks that do not line up with the parts.
    defp chunks,
      do: Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@mib + 1) end) |> Enum.take(16)

    defp upload(:stream, chunks, store, path),
      do: OSXStream.upload(chunks, store, path, part_size: @part)

    defp upload(:sink, chunks, store, path) do
      Enum.into(chunks, OSXStream.upload_sink(store, path, part_size: @part))
      flunk("the sink collected everything without raising")
    rescue
      e in ObjectStoreX.Error -> {:error, e}
    end

    defp upload(:file, chunks, store, path) do
      file = Path.join(TestBackends.tmp_dir!("abort"), "source.bin")
      File.write!(file, chunks)

      try do
        ObjectStoreX.upload_file(store, path, file, part_size: @part)
      after
        File.rm_rf!(Path.dirname(file))
      end
    end

    defp upload(:transfer, chunks, store, path) do
      source = TestBackends.store!(:memory)
      :ok = ObjectStoreX.put(source, "source.bin", chunks)
      ObjectStoreX.transfer(source, "source.bin", store, path, part_size: @part)
    end

    for via <- [:stream, :sink, :file, :transfer] do
      test "part 2 failing after retries aborts the upload (#{via})" do
        {proxy, store, direct} = faulty_store({"PUT", @part_2, 500})

        assert {:error, %ObjectStoreX.Error{retryable: true}} =
                 upload(unquote(via), chunks(), store, "part-fails.bin")

        assert FaultProxy.count(proxy, "PUT", @part_2) == @attempts
        assert eventually_none(direct) == 0
        assert FaultProxy.count(proxy, "DELETE", @upload_id) == 1

        assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
                 ObjectStoreX.head(direct, "part-fails.bin")
      end

      test "completing failing after retries aborts the upload (#{via})" do
        {proxy, store, direct} = faulty_store({"POST", @upload_id, 500})

        assert {:error, %ObjectStoreX.Error{retryable: true}} =
                 upload(unquote(via), chunks(), store, "complete-fails.bin")

        assert FaultProxy.count(proxy, "POST", @upload_id) == @attempts
        assert FaultProxy.count(proxy, "PUT", ~r/[?&]partNumber=/) == 4
        assert eventually_none(direct) == 0
        assert FaultProxy.count(proxy, "DELETE", @upload_id) == 1

        assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
                 ObjectStoreX.head(direct, "complete-fails.bin")
      end
    end

    test "a completion the server applied but whose every answer was lost is confirmed" do
      # The server completes the upload; the client never hears it, and its retries find the
      # upload gone. The object is there, whole: the call must say so, not fail.
      {proxy, store, direct} = faulty_store({"POST", @upload_id, :drop_response})
      chunks = chunks()

      assert {:ok, summary} =
               ObjectStoreX.transfer(
                 TestBackends.store!(:memory) |> tap(&put_all(&1, chunks)),
                 "source.bin",
                 store,
                 "lost-answer.bin",
                 part_size: @part
               )

      assert FaultProxy.count(proxy, "POST", @upload_id) >= 1
      assert summary.bytes == IO.iodata_length(chunks)
      assert ObjectStoreX.get!(direct, "lost-answer.bin") == IO.iodata_to_binary(chunks)
      assert eventually_none(direct) == 0
    end

    @create ~r/[?&]uploads(=|&|$)/

    for via <- [:stream, :file, :transfer] do
      test "a create whose answer was lost leaves no upload behind (#{via})" do
        # The server begins an upload and its answer never arrives; the retry begins a second.
        {proxy, store, direct} = faulty_store({"POST", @create, :drop_response, 1})
        chunks = chunks()

        result = upload(unquote(via), chunks, store, "lost-create.bin")

        assert result == :ok or match?({:ok, _}, result), inspect(result)
        assert FaultProxy.count(proxy, "POST", @create) == 2
        assert ObjectStoreX.get!(direct, "lost-create.bin") == IO.iodata_to_binary(chunks)
        assert eventually_none(direct) == 0
        # The first attempt's upload was found and aborted, not left to a lifecycle rule.
        assert FaultProxy.count(proxy, "DELETE", @upload_id) == 1
      end
    end

    test "creates whose every answer was lost fail the upload and leave nothing behind" do
      {proxy, store, direct} = faulty_store({"POST", @create, :drop_response})

      assert {:error, %ObjectStoreX.Error{}} =
               upload(:stream, chunks(), store, "lost-creates.bin")

      assert FaultProxy.count(proxy, "POST", @create) == @attempts
      assert eventually_none(direct) == 0
      assert FaultProxy.count(proxy, "DELETE", @upload_id) == @attempts

      assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
               ObjectStoreX.head(direct, "lost-creates.bin")
    end

    test "a part refused outright is not retried, and the upload is aborted" do
      {proxy, store, direct} = faulty_store({"PUT", @part_2, 400})

      assert {:error, %ObjectStoreX.Error{retryable: false}} =
               upload(:stream, chunks(), store, "part-refused.bin")

      assert FaultProxy.count(proxy, "PUT", @part_2) == 1
      assert eventually_none(direct) == 0
      assert FaultProxy.count(proxy, "DELETE", @upload_id) == 1
    end
  end

  test "a completed upload leaves nothing in progress", %{store: store} do
    assert :ok =
             OSXStream.upload(
               List.duplicate(:crypto.strong_rand_bytes(@mib), 12),
               store,
               "done.bin",
               part_size: @part
             )

    assert in_progress(store) == 0
    assert {:ok, %ObjectStoreX.Meta{size: size}} = ObjectStoreX.head(store, "done.bin")
    assert size == 12 * @mib
  end
end
