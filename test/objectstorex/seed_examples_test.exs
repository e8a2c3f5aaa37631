defmodule ObjectStoreX.SeedExamplesTest do
  # The non-streaming examples of the README ("Using it"), as written as far as possible,
  # against memory and local stores. Where the guide leaves a
  # function to the reader (parse_parquet_metadata/2, parse_video_header/2), it is defined
  # below so that the test can check what the example read.
  use ExUnit.Case, async: true

  alias ObjectStoreX.TestBackends
  import ObjectStoreX.TestHelpers

  for backend <- [:memory, :local] do
    describe "#{backend}" do
      @describetag seed_backend: backend

      setup %{seed_backend: backend} do
        store = TestBackends.store!(backend)
        %{store: store}
      end

      test "Small files (<10MB): Single put", %{store: store} do
        data = "hello, small file"

        :ok = ObjectStoreX.put(store, "small.txt", data)

        assert {:ok, ^data, %ObjectStoreX.Meta{size: 17}} = ObjectStoreX.get(store, "small.txt")
      end

      test "Single Range: read first 1000 bytes", %{store: store} do
        content = random_bytes(5000)
        :ok = ObjectStoreX.put(store, "file.bin", content)

        # Read first 1000 bytes
        {:ok, data, meta} = ObjectStoreX.get(store, "file.bin", range: {0, 999})

        assert data == binary_part(content, 0, 1000)
        assert meta.size == 5000
        assert meta.location == "file.bin"
      end

      test "Multiple Ranges: Parquet header and footer", %{store: store} do
        :ok = ObjectStoreX.put(store, "data.parquet", framed_bytes(10_000_000, "PAR1", "PAR1"))

        # Read header and footer (e.g., Parquet file)
        {:ok, [header, footer]} =
          ObjectStoreX.get_ranges(store, "data.parquet", [
            # Header
            {0, 1000},
            # Footer
            {9_999_000, 10_000_000}
          ])

        # Parse metadata without downloading full file
        assert parse_parquet_metadata(header, footer) == {:ok, 1001, 1000}
      end

      test "Video File Preview", %{store: store} do
        video = <<0, 0, 0, 32, "ftypisom">> <> random_bytes(4988)
        :ok = ObjectStoreX.put(store, "video.mp4", video)

        # Extract video metadata from header
        {:ok, [header, metadata_section]} =
          ObjectStoreX.get_ranges(store, "video.mp4", [
            # File header
            {0, 100},
            # Metadata section
            {500, 2000}
          ])

        video_info = parse_video_header(header, metadata_section)

        assert video_info == %{brand: "isom", header_bytes: 101, metadata_bytes: 1501}
        assert metadata_section == binary_part(video, 500, 1501)
      end

      test "Parallel Range Reads", %{store: store} do
        contents =
          for f <- ["file1.bin", "file2.bin", "file3.bin"], into: %{}, do: {f, random_bytes(4096)}

        Enum.each(contents, fn {f, d} -> :ok = ObjectStoreX.put(store, f, d) end)

        # Read multiple files in parallel
        files = ["file1.bin", "file2.bin", "file3.bin"]

        tasks =
          Enum.map(files, fn file ->
            Task.async(fn ->
              {:ok, data, _meta} = ObjectStoreX.get(store, file, range: {0, 1000})
              {file, data}
            end)
          end)

        results = Task.await_many(tasks)

        assert results ==
                 Enum.map(files, fn f -> {f, binary_part(contents[f], 0, 1001)} end)
      end

      test "Progress tracking: head gives the total size", %{store: store} do
        :ok = ObjectStoreX.put(store, "remote.bin", random_bytes(123_456))

        {:ok, meta} = ObjectStoreX.head(store, "remote.bin")
        total_size = meta.size

        assert total_size == 123_456
      end

      test "Process in Batches: delete in batches", %{store: store} do
        for i <- 1..30, do: :ok = ObjectStoreX.put(store, "temp/#{i}", "x")
        :ok = ObjectStoreX.put(store, "kept.txt", "k")

        # The guide lists with ObjectStoreX.Stream.list_stream/2 (out of scope here): the same
        # pipeline over ObjectStoreX.list/2.
        {:ok, listing} = ObjectStoreX.list(store, prefix: "temp/")

        output =
          ExUnit.CaptureIO.capture_io(fn ->
            listing
            |> Stream.map(fn meta -> meta.location end)
            |> Stream.chunk_every(1000)
            |> Stream.each(fn batch ->
              {:ok, deleted, _failed} = ObjectStoreX.delete_many(store, batch)
              IO.puts("Deleted batch: #{deleted} objects")
            end)
            |> Stream.run()
          end)

        assert output == "Deleted batch: 30 objects\n"
        assert {:ok, [%ObjectStoreX.Meta{location: "kept.txt"}]} = ObjectStoreX.list(store)
      end

      test "Implement Retry Logic: retryable?/1 decides", %{store: store} do
        # A permanent error is returned at once...
        assert {{:error, %ObjectStoreX.Error{reason: :not_found}}, 1} =
                 put_with_retry(fn -> ObjectStoreX.get(store, "missing.bin") end, 3)

        # ...a transient one is retried `retries` times (here: a refused connection).
        {:ok, unreachable} =
          ObjectStoreX.new(:http,
            url: "http://127.0.0.1:1/",
            allow_http: true,
            connect_timeout: 500,
            retry: [max_retries: 0]
          )

        assert {{:error, %ObjectStoreX.Error{reason: :network_error}}, 4} =
                 put_with_retry(fn -> ObjectStoreX.put(unreachable, "a.bin", "data") end, 3)

        # ...and a success needs one attempt.
        assert {:ok, 1} = put_with_retry(fn -> ObjectStoreX.put(store, "a.bin", "data") end, 3)
      end
    end
  end

  # The guide's RetryUploader, over a plain operation instead of Stream.upload/3 and with a
  # 10 ms pause instead of 1 s; returns the result and the number of attempts.
  defp put_with_retry(op, retries, attempts \\ 1) do
    case op.() do
      :ok ->
        {:ok, attempts}

      {:error, reason} when retries > 0 ->
        if ObjectStoreX.Error.retryable?(reason) do
          :timer.sleep(10)
          put_with_retry(op, retries - 1, attempts + 1)
        else
          {{:error, reason}, attempts}
        end

      {:error, reason} ->
        {{:error, reason}, attempts}

      {:ok, _data, _meta} = ok ->
        {ok, attempts}
    end
  end

  defp parse_parquet_metadata(<<"PAR1", _::binary>> = header, footer) do
    if binary_part(footer, byte_size(footer) - 4, 4) == "PAR1",
      do: {:ok, byte_size(header), byte_size(footer)},
      else: {:error, :bad_footer}
  end

  defp parse_parquet_metadata(_header, _footer), do: {:error, :bad_header}

  defp parse_video_header(<<_size::32, "ftyp", brand::binary-size(4), _::binary>> = header, meta) do
    %{brand: brand, header_bytes: byte_size(header), metadata_bytes: byte_size(meta)}
  end
end
