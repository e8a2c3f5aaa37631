defmodule ObjectStoreX.Backends.S3AbortTest do
  # Every failure path of a multipart upload, proven against the real S3 server by listing its
  # in-progress multipart uploads through the server's own API (boto3).
  use ExUnit.Case, async: true
  @moduletag backend: :s3

  alias ObjectStoreX.TestBackends
  alias ObjectStoreX.Stream, as: OSXStream

  @mib 1_048_576
  @part 5 * @mib

  setup do
    {:ok, store: TestBackends.store!(:s3)}
  end

  defp in_progress(store) do
    python = System.fetch_env!("OBJECTSTOREX_TEST_PYTHON")
    script = Path.expand("../../scripts/s3_list_multipart.py", __DIR__)

    args = [
      script,
      System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"),
      System.fetch_env!("OBJECTSTOREX_TEST_S3_BUCKET"),
      store.prefix <> "/"
    ]

    {out, 0} = System.cmd(python, args)
    out |> String.trim() |> String.to_integer()
  end

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

  test "halting a sink aborts the upload", %{store: store} do
    parent = self()
    sink = OSXStream.upload_sink(store, "halted.bin", part_size: @part)

    taken =
      Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@part + 1) end)
      |> Stream.into(sink)
      |> Stream.each(fn _ -> send(parent, {:count, in_progress(store)}) end)
      |> Enum.take(2)

    assert length(taken) == 2
    assert_received {:count, 1}
    assert eventually_none(store) == 0
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
