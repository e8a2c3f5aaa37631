defmodule ObjectStoreX.StreamSuite do
  @moduledoc false
  # Streaming download, listing, upload and transfer behaviour, run against every backend that
  # has multipart uploads (memory, local, S3, Azure): `use ObjectStoreX.StreamSuite, backend: b`.

  defmacro __using__(backend: backend) do
    quote do
      alias ObjectStoreX.Stream, as: OSXStream

      @mib 1_048_576
      @part 5 * @mib

      setup do
        {:ok, store: ObjectStoreX.TestBackends.store!(unquote(backend))}
      end

      defp sha256(data), do: Base.encode16(:crypto.hash(:sha256, data), case: :lower)

      # The memory store joins its chunks into one PUT instead of uploading parts.
      defp expected_parts(size) do
        if unquote(backend) == :memory, do: 1, else: max(1, div(size + @part - 1, @part))
      end

      # The memory store's objects are slices of what it keeps: nothing to collect.
      if unquote(backend) != :memory do
        describe "Stream.get_many/3" do
          test "collects the objects of 1 MiB the consumer has let go of",
               %{store: store} do
            for i <- 1..4,
                do: :ok = ObjectStoreX.put(store, "gm/#{i}", :crypto.strong_rand_bytes(@mib))

            before = MapSet.new(Process.info(self(), :binary) |> elem(1), &elem(&1, 0))

            # Every object this process references that it did not before: the one at hand,
            # the others fetched (at most :max_concurrency and a quarter more, in the mailbox
            # or the stream's state), and those not collected yet.
            held = fn ->
              {:binary, bins} = Process.info(self(), :binary)
              Enum.count(bins, &(not MapSet.member?(before, elem(&1, 0))))
            end

            most =
              Stream.cycle(1..4)
              |> Stream.take(24)
              |> Stream.map(&"gm/#{&1}")
              |> then(&OSXStream.get_many(store, &1, max_concurrency: 2))
              |> Enum.reduce(0, fn {_, {:ok, _, _}}, most -> max(most, held.()) end)

            assert most <= 4
          end
        end
      end

      describe "Stream.download/3" do
        test "delivers the object in exact chunks with a matching digest", %{store: store} do
          data = :crypto.strong_rand_bytes(3 * @mib + 12_345)
          :ok = ObjectStoreX.put(store, "dl/a.bin", data)
          parent = self()

          chunks =
            OSXStream.download(store, "dl/a.bin",
              chunk_size: @mib,
              hash: :sha256,
              on_complete: &send(parent, {:summary, &1})
            )
            |> Enum.to_list()

          assert IO.iodata_to_binary(chunks) == data
          assert Enum.map(chunks, &byte_size/1) == [@mib, @mib, @mib, 12_345]
          assert_receive {:summary, %{bytes: bytes, chunks: 4, digest: digest}}
          assert bytes == byte_size(data)
          assert digest == sha256(data)
        end

        test "streams a range and an empty object", %{store: store} do
          data = :crypto.strong_rand_bytes(100_000)
          :ok = ObjectStoreX.put(store, "dl/r.bin", data)
          ranged = OSXStream.download(store, "dl/r.bin", range: {1000, 50_999}, chunk_size: 7000)
          assert IO.iodata_to_binary(Enum.to_list(ranged)) == binary_part(data, 1000, 50_000)

          :ok = ObjectStoreX.put(store, "dl/empty.bin", "")

          assert OSXStream.download(store, "dl/empty.bin")
                 |> Enum.to_list()
                 |> IO.iodata_to_binary() == ""
        end

        test "parallel ranged download equals the source", %{store: store} do
          data = :crypto.strong_rand_bytes(2 * @mib + 777)
          :ok = ObjectStoreX.put(store, "dl/p.bin", data)

          chunks =
            OSXStream.download(store, "dl/p.bin", chunk_size: 300_000, concurrency: 4)
            |> Enum.to_list()

          assert IO.iodata_to_binary(chunks) == data
        end

        test "an object replaced during a parallel download never mixes two versions",
             %{store: store} do
          original = :crypto.strong_rand_bytes(2 * @mib)
          :ok = ObjectStoreX.put(store, "dl/changing.bin", original)

          download = fn ->
            OSXStream.download(store, "dl/changing.bin",
              chunk_size: 100_000,
              concurrency: 2,
              prefetch: 1
            )
            |> Stream.with_index()
            |> Enum.map(fn {chunk, i} ->
              if i == 0,
                do:
                  :ok =
                    ObjectStoreX.put(
                      store,
                      "dl/changing.bin",
                      :crypto.strong_rand_bytes(2 * @mib)
                    )

              chunk
            end)
          end

          if unquote(backend) == :local do
            # A local download reads the file it opened, which a replacement (a rename over
            # the path) leaves as it was: the whole first version comes through.
            assert IO.iodata_to_binary(download.()) == original
          else
            # Ranged reads are pinned to the first version: the next one is refused.
            error = assert_raise ObjectStoreX.Error, download
            assert error.reason == :precondition_failed
          end
        end

        test "a consumer that stops after one chunk is sent exactly :prefetch more, where each credit goes back at once",
             %{store: store} do
          :ok = ObjectStoreX.put(store, "dl/ahead.bin", :crypto.strong_rand_bytes(2 * @mib))

          for prefetch <- [1, 3] do
            stream =
              OSXStream.download(store, "dl/ahead.bin", chunk_size: 65_536, prefetch: prefetch)

            {:suspended, first, continuation} =
              Enumerable.reduce(stream, {:cont, nil}, fn chunk, _ -> {:suspend, chunk} end)

            assert byte_size(first) == 65_536
            # Long enough for every read the credit allows to land, and for any beyond it. The
            # receive moves messages sent from native threads into the queue that
            # Process.info/2 reads.
            Process.sleep(300)

            receive do
              :never_sent -> :ok
            after
              0 -> :ok
            end

            {:messages, messages} = Process.info(self(), :messages)
            ahead = for {_ref, {:data, chunk}} <- messages, do: byte_size(chunk)
            assert ahead == List.duplicate(65_536, prefetch)
            assert {:halted, nil} = continuation.({:halt, nil})
          end

          refute_received _
        end

        # The memory store's chunks are slices of the object it keeps: nothing to collect.
        if unquote(backend) != :memory do
          test "chunks the consumer has let go of are collected before the next is awaited",
               %{store: store} do
            :ok = ObjectStoreX.put(store, "dl/gc.bin", :crypto.strong_rand_bytes(16 * @mib))
            before = MapSet.new(Process.info(self(), :binary) |> elem(1), &elem(&1, 0))

            # The binaries this process references that it did not before, less the chunks
            # waiting in its mailbox: the chunk at hand and those not collected yet.
            held = fn ->
              {:binary, bins} = Process.info(self(), :binary)
              {:message_queue_len, queued} = Process.info(self(), :message_queue_len)
              Enum.count(bins, &(not MapSet.member?(before, elem(&1, 0)))) - queued
            end

            most =
              Stream.repeatedly(fn -> OSXStream.download(store, "dl/gc.bin", chunk_size: @mib) end)
              |> Stream.take(4)
              |> Stream.flat_map(& &1)
              |> Enum.reduce(0, fn _chunk, most -> max(most, held.()) end)

            # Left to the VM's own heuristics, 4 to 13 outlived their use here (its binary heap
            # grows with the chunks a process keeps); collected, only the chunk at hand is left.
            assert most <= 2
          end
        end

        # Chunks too small to be worth a collection: a consumer that keeps them all is left
        # to the VM, which collects as its heap grows, not once per chunk.
        test "a consumer keeping every small chunk is not collected per chunk", %{store: store} do
          data = :crypto.strong_rand_bytes(64 * 1024)
          :ok = ObjectStoreX.put(store, "dl/small-chunks.bin", data)

          {chunks, majors} =
            ObjectStoreX.TestHelpers.major_collections(fn ->
              OSXStream.download(store, "dl/small-chunks.bin", chunk_size: 512) |> Enum.to_list()
            end)

          assert IO.iodata_to_binary(chunks) == data
          assert length(chunks) == 128
          assert majors <= 4
        end

        test "halting early leaves no message behind", %{store: store} do
          :ok = ObjectStoreX.put(store, "dl/h.bin", :crypto.strong_rand_bytes(2 * @mib))

          assert [_, _] =
                   OSXStream.download(store, "dl/h.bin", chunk_size: 100_000) |> Enum.take(2)

          assert ObjectStoreX.TestHelpers.drain_mailbox(200) == []
        end

        test "a raise in the consumer stops the stream and leaves no message", %{store: store} do
          :ok = ObjectStoreX.put(store, "dl/x.bin", :crypto.strong_rand_bytes(@mib))

          assert_raise RuntimeError, "consumer failed", fn ->
            OSXStream.download(store, "dl/x.bin", chunk_size: 100_000)
            |> Enum.each(fn _ -> raise "consumer failed" end)
          end

          assert ObjectStoreX.TestHelpers.drain_mailbox(200) == []
        end

        test "a missing object raises :not_found during enumeration", %{store: store} do
          stream = OSXStream.download(store, "dl/missing.bin")
          assert %ObjectStoreX.Error{reason: :not_found} = catch_error(Enum.to_list(stream))
          assert ObjectStoreX.TestHelpers.drain_mailbox(200) == []
        end

        test "verify raises on a digest mismatch", %{store: store} do
          :ok = ObjectStoreX.put(store, "dl/v.bin", "payload")

          assert OSXStream.download(store, "dl/v.bin",
                   hash: :md5,
                   verify: Base.encode16(:crypto.hash(:md5, "payload"))
                 )
                 |> Enum.to_list() == ["payload"]

          error =
            assert_raise ObjectStoreX.Error, fn ->
              OSXStream.download(store, "dl/v.bin",
                hash: :sha256,
                verify: String.duplicate("0", 64)
              )
              |> Stream.run()
            end

          assert error.reason == :checksum_mismatch
        end

        test "lines are joined across chunk boundaries, plain and gzip", %{store: store} do
          lines = for i <- 1..2000, do: "line #{i} " <> String.duplicate("x", rem(i, 37))
          text = Enum.join(lines, "\n") <> "\n"
          :ok = ObjectStoreX.put(store, "dl/log.txt", text)
          :ok = ObjectStoreX.put(store, "dl/log.txt.gz", :zlib.gzip(text))
          assert OSXStream.lines(store, "dl/log.txt", chunk_size: 333) |> Enum.to_list() == lines

          assert OSXStream.lines(store, "dl/log.txt.gz", chunk_size: 333, decompress: :gzip)
                 |> Enum.to_list() == lines

          :ok = ObjectStoreX.put(store, "dl/crlf.txt", "a\r\nb\nlast")

          assert OSXStream.lines(store, "dl/crlf.txt", chunk_size: 2) |> Enum.to_list() == [
                   "a",
                   "b",
                   "last"
                 ]

          error =
            assert_raise ObjectStoreX.Error, fn ->
              OSXStream.lines(store, "dl/log.txt", max_line_length: 10) |> Stream.run()
            end

          assert error.reason == :line_too_long
        end

        test "on_progress reports bytes against the total", %{store: store} do
          :ok = ObjectStoreX.put(store, "dl/prog.bin", :crypto.strong_rand_bytes(500_000))
          parent = self()

          OSXStream.download(store, "dl/prog.bin",
            chunk_size: 100_000,
            on_progress: &send(parent, {:progress, &1})
          )
          |> Stream.run()

          # Reported as the bytes arrive (the first chunk at once), and at the end.
          assert_receive {:progress, %{bytes: 100_000, total: 500_000}}
          assert_receive {:progress, %{bytes: 500_000, total: 500_000}}
        end
      end

      describe "Stream.list_stream/2" do
        test "lists every object under a prefix in pages, lazily", %{store: store} do
          for i <- 1..25, do: :ok = ObjectStoreX.put(store, "ls/#{i}.txt", "#{i}")
          :ok = ObjectStoreX.put(store, "other/1.txt", "x")
          metas = OSXStream.list_stream(store, prefix: "ls/", page_size: 10) |> Enum.to_list()
          assert length(metas) == 25
          assert Enum.all?(metas, &match?(%ObjectStoreX.Meta{size: s} when s > 0, &1))

          assert metas |> Enum.map(& &1.location) |> Enum.sort() ==
                   Enum.sort(for i <- 1..25, do: "ls/#{i}.txt")

          assert length(OSXStream.list_stream(store, prefix: "ls", page_size: 10) |> Enum.take(3)) ==
                   3

          assert ObjectStoreX.TestHelpers.drain_mailbox(200) == []
        end

        # A listing's pages are never worth a collection: a consumer that keeps every entry is
        # left to the VM, not collected once per page (which made a long listing quadratic).
        test "a consumer keeping every entry is not collected per page", %{store: store} do
          for i <- 1..60, do: :ok = ObjectStoreX.put(store, "lsgc/#{i}", "#{i}")

          {metas, majors} =
            ObjectStoreX.TestHelpers.major_collections(fn ->
              OSXStream.list_stream(store, prefix: "lsgc/", page_size: 2) |> Enum.to_list()
            end)

          assert length(metas) == 60
          assert majors <= 4
        end

        test "the seed's batch delete runs as written", %{store: store} do
          for i <- 1..30, do: :ok = ObjectStoreX.put(store, "temp/#{i}", "x")

          ObjectStoreX.Stream.list_stream(store, prefix: "temp/")
          |> Stream.map(fn meta -> meta.location end)
          |> Stream.chunk_every(1000)
          |> Stream.each(fn batch ->
            {:ok, deleted, _failed} = ObjectStoreX.delete_many(store, batch)
            send(self(), {:deleted, deleted})
          end)
          |> Stream.run()

          assert_received {:deleted, 30}
          assert ObjectStoreX.Stream.list_stream(store, prefix: "temp/") |> Enum.to_list() == []
        end
      end

      describe "Stream.upload/4" do
        for size <- [0, 1, @part - 1, @part, @part + 1, 2 * @part, 3 * @part + 4321] do
          @upload_size size
          test "uploads #{size} bytes in odd-sized chunks with a matching digest", %{store: store} do
            size = @upload_size
            data = :crypto.strong_rand_bytes(size)
            chunks = for <<c::binary-size(333_333) <- data>>, do: c
            tail = binary_part(data, length(chunks) * 333_333, size - length(chunks) * 333_333)
            parent = self()

            assert :ok =
                     OSXStream.upload(chunks ++ [tail], store, "up/#{size}.bin",
                       part_size: @part,
                       hash: :sha256,
                       on_complete: &send(parent, {:done, &1})
                     )

            assert_receive {:done, %{bytes: ^size, digest: digest, parts: parts}}
            assert digest == sha256(data)
            assert parts == expected_parts(size)

            assert ObjectStoreX.get!(store, "up/#{size}.bin") == data
          end
        end

        test "a chunk larger than two parts between small ones is cut into exact parts",
             %{store: store} do
          small = :crypto.strong_rand_bytes(1_000_001)
          chunks = [small, :crypto.strong_rand_bytes(2 * @part + 17), small, [small, small]]
          data = IO.iodata_to_binary(chunks)
          parent = self()

          assert :ok =
                   OSXStream.upload(chunks, store, "up/mixed.bin",
                     part_size: @part,
                     on_complete: &send(parent, {:done, &1})
                   )

          assert_receive {:done, %{bytes: bytes, parts: parts}}
          assert bytes == byte_size(data)

          assert parts == expected_parts(byte_size(data))

          assert ObjectStoreX.get!(store, "up/mixed.bin") == data
        end

        test "accepts iodata and collects through upload_sink", %{store: store} do
          data = :crypto.strong_rand_bytes(@part + 10)
          <<a::binary-size(1000), b::binary-size(2000), rest::binary>> = data

          assert :ok =
                   OSXStream.upload([[a, [b]], rest], store, "up/iodata.bin", part_size: @part)

          assert ObjectStoreX.get!(store, "up/iodata.bin") == data

          sink =
            Enum.into([a, b, rest], OSXStream.upload_sink(store, "up/sink.bin", part_size: @part))

          assert sink.result.bytes == byte_size(data)
          assert ObjectStoreX.get!(store, "up/sink.bin") == data
        end

        test "a raising source re-raises and leaves no object", %{store: store} do
          source =
            Stream.concat(
              List.duplicate(:crypto.strong_rand_bytes(@mib), 6),
              Stream.map([1], fn _ -> raise "source broke" end)
            )

          assert_raise RuntimeError, "source broke", fn ->
            OSXStream.upload(source, store, "up/broken.bin", part_size: @part)
          end

          assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
                   ObjectStoreX.head(store, "up/broken.bin")
        end

        test "on_progress reports the bytes sent as they go and at the end", %{store: store} do
          parent = self()

          :ok =
            List.duplicate(:crypto.strong_rand_bytes(100_000), 5)
            |> OSXStream.upload(store, "up/prog.bin",
              size_hint: 500_000,
              on_progress: &send(parent, {:progress, &1})
            )

          assert_receive {:progress, %{bytes: 100_000, total: 500_000}}
          assert_receive {:progress, %{bytes: 500_000, total: 500_000}}
        end

        test "concurrent uploads to different keys", %{store: store} do
          results =
            1..4
            |> Task.async_stream(fn i ->
              data = :crypto.strong_rand_bytes(@part + i)
              :ok = OSXStream.upload([data], store, "up/c#{i}.bin", part_size: @part)
              ObjectStoreX.get!(store, "up/c#{i}.bin") == data
            end)
            |> Enum.map(fn {:ok, same?} -> same? end)

          assert results == [true, true, true, true]
        end

        test "the chunks of parts already sent are not kept by the uploading process",
             %{store: store} do
          # Each chunk is made just before it is read, so the process's own binaries are the
          # part being gathered plus whatever it has not collected yet. Without a collection
          # after each part, the ones already sent pile up until the VM decides to collect.
          chunk = 256 * 1024
          probe = fn -> Process.info(self(), :binary) |> elem(1) |> Enum.map(&elem(&1, 1)) end

          held =
            Stream.repeatedly(fn -> :crypto.strong_rand_bytes(chunk) end)
            |> Stream.take(div(12 * @part, chunk))
            |> Stream.map(fn data ->
              Process.put(:held, max(Process.get(:held, 0), Enum.sum(probe.())))
              data
            end)
            |> OSXStream.upload(store, "up/fresh.bin", part_size: @part, max_concurrency: 2)
            |> then(fn :ok -> Process.delete(:held) end)

          assert ObjectStoreX.head!(store, "up/fresh.bin").size == 12 * @part
          assert held <= @part + 2 * chunk
        end

        test "the seed's download |> upload migration runs as written", %{store: store} do
          {:ok, dest} = ObjectStoreX.new(:memory)
          data = :crypto.strong_rand_bytes(@part + 99)
          :ok = ObjectStoreX.put(store, "mig/one.bin", data)
          :ok = ObjectStoreX.put(store, "mig/two.bin", "two")

          ObjectStoreX.Stream.list_stream(store, prefix: "mig/")
          |> Task.async_stream(
            fn meta ->
              ObjectStoreX.Stream.download(store, meta.location)
              |> ObjectStoreX.Stream.upload(dest, meta.location)
            end,
            max_concurrency: 10,
            timeout: :infinity
          )
          |> Stream.run()

          assert ObjectStoreX.get!(dest, "mig/one.bin") == data
          assert ObjectStoreX.get!(dest, "mig/two.bin") == "two"
        end
      end

      describe "files and transfers" do
        @tag :tmp_dir
        test "upload_file and download_file round trip", %{store: store, tmp_dir: dir} do
          data = :crypto.strong_rand_bytes(2 * @part + 5)
          src = Path.join(dir, "src.bin")
          File.write!(src, data)

          assert {:ok, %{bytes: bytes, digest: digest}} =
                   ObjectStoreX.upload_file(store, "f/file.bin", src,
                     part_size: @part,
                     hash: :sha256
                   )

          assert bytes == byte_size(data) and digest == sha256(data)

          dst = Path.join(dir, "dst.bin")

          assert {:ok, %ObjectStoreX.Meta{size: size}} =
                   ObjectStoreX.download_file(store, "f/file.bin", dst,
                     chunk_size: @mib,
                     concurrency: 4
                   )

          assert size == byte_size(data)
          assert File.read!(dst) == data

          assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
                   ObjectStoreX.download_file(store, "f/missing.bin", Path.join(dir, "m.bin"))

          assert File.ls!(dir) |> Enum.sort() == ["dst.bin", "src.bin"]
        end

        @tag :tmp_dir
        test "download_file with :hash gives the digest of the file to :on_complete",
             %{store: store, tmp_dir: dir} do
          data = :crypto.strong_rand_bytes(5 * @mib + 7)
          :ok = ObjectStoreX.put(store, "f/hashed.bin", data)
          dst = Path.join(dir, "hashed.bin")
          test = self()

          # 1 MiB ranges, 4 at once: written out of order, hashed in order.
          assert {:ok, %ObjectStoreX.Meta{size: size}} =
                   ObjectStoreX.download_file(store, "f/hashed.bin", dst,
                     chunk_size: @mib,
                     concurrency: 4,
                     hash: :sha256,
                     on_complete: &send(test, {:summary, &1})
                   )

          assert size == byte_size(data) and File.read!(dst) == data
          assert_received {:summary, %{bytes: ^size, digest: digest, duration_us: _}}
          assert digest == sha256(data)

          assert {:ok, _} =
                   ObjectStoreX.download_file(store, "f/hashed.bin", dst,
                     on_complete: &send(test, {:plain, &1})
                   )

          assert_received {:plain, %{digest: nil}}

          assert {:error, %ObjectStoreX.Error{reason: :invalid_argument}} =
                   ObjectStoreX.download_file(store, "f/hashed.bin", dst, hash: :sha512)
        end

        test "transfer to another store verifies bytes and digest", %{store: store} do
          {:ok, other} = ObjectStoreX.new(:memory)
          data = :crypto.strong_rand_bytes(@part + 3)
          :ok = ObjectStoreX.put(other, "src.bin", data)

          assert {:ok, %{bytes: bytes, digest: digest}} =
                   ObjectStoreX.transfer(other, "src.bin", store, "t/copy.bin", part_size: @part)

          assert bytes == byte_size(data) and digest == sha256(data)
          assert ObjectStoreX.get!(store, "t/copy.bin") == data
        end

        # Objects below one part reach a local store in one write: a staging file beside the
        # target, its size checked, renamed into place.
        @tag :tmp_dir
        test "small transfers into a local store are whole, counted and leave no staging file",
             %{store: store, tmp_dir: dir} do
          local = ObjectStoreX.new!(:local, root: dir)

          objects =
            for {size, i} <- Enum.with_index([0, 1, 16_384, @part - 1]),
                do: {"small/#{i}/o #{i}.bin", :crypto.strong_rand_bytes(size)}

          for {key, data} <- objects, do: :ok = ObjectStoreX.put(store, key, data)

          for {key, data} <- objects do
            assert {:ok, %{bytes: bytes, digest: digest, parts: 1, etag: etag}} =
                     ObjectStoreX.transfer(store, key, local, "in/" <> key, part_size: @part)

            assert bytes == byte_size(data) and digest == sha256(data)
            assert File.read!(Path.join([dir, "in", key])) == data
            assert {:ok, %ObjectStoreX.Meta{etag: ^etag}} = ObjectStoreX.head(local, "in/" <> key)
          end

          # A directory where the object would go: the rename fails, the error is data, and the
          # staging file is gone.
          {key, _} = hd(objects)
          File.mkdir_p!(Path.join([dir, "taken", key, "inner"]))

          assert {:error, %ObjectStoreX.Error{}} =
                   ObjectStoreX.transfer(store, key, local, "taken/" <> key, part_size: @part)

          assert File.dir?(Path.join([dir, "taken", key, "inner"]))

          staged = Path.wildcard(Path.join(dir, "**/*#*"), match_dot: true)
          assert staged == []
        end
      end
    end
  end
end
